"""What one version of a prompt API is: a prompt template (messages with typed variables), the
model that answers it, the call's parameters, and optionally the answer's JSON Schema.

The same model is the admin API's input and the YAML's; it is checked whole when defined (the
template parsed, its placeholders matched to the input schema's properties, both schemas
checked), so a published version can always be rendered. The schemas are kept as given: the
generated OpenAPI document and the MCP tools use them as they are.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from tollway.config.fields import ModelRef, Strict
from tollway.llm.prompt_template import InputError, PromptTemplate, TemplateError, check_schema
from tollway.llm.structured_output import OutputSchema


class PromptMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=100_000)


class PromptParameters(Strict):
    """The call's sampling parameters (a caller cannot change them)."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0, le=1_000_000)
    stop: list[str] | None = Field(None, max_length=4)
    seed: int | None = None


class ExactCheck(Strict):
    """The output is this value (with an output schema), or this text."""

    type: Literal["exact"]
    value: Any

    def failure(self, output: Any, text: str) -> str | None:
        if output == self.value:
            return None
        return f"expected {_shown(self.value)}, got {_shown(output)}"


class ContainsCheck(Strict):
    """The answer's text holds this text."""

    type: Literal["contains"]
    text: str = Field(min_length=1, max_length=10_000)

    def failure(self, output: Any, text: str) -> str | None:
        return None if self.text in text else f"the answer does not contain {self.text!r}"


class RegexCheck(Strict):
    """The answer's text matches this regular expression (anywhere in it)."""

    type: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=1000)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def failure(self, output: Any, text: str) -> str | None:
        found = re.search(self.pattern, text)
        return None if found else f"the answer does not match /{self.pattern}/"


class SchemaCheck(Strict):
    """The output (the answer's JSON) is valid against this JSON Schema."""

    type: Literal["json_schema"]
    json_schema: dict[str, Any]

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            check_schema(value, "json_schema")
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value

    def failure(self, output: Any, text: str) -> str | None:
        problems = OutputSchema(self.json_schema).read(text).problems
        return None if not problems else "; ".join(problems[:3])


class FieldCheck(Strict):
    """A field of the output (a dotted path: `label`, `scores.0`) equals this value."""

    type: Literal["field_equals"]
    field: str = Field(min_length=1, max_length=500)
    value: Any

    def failure(self, output: Any, text: str) -> str | None:
        found: Any = output
        for step in self.field.split("."):
            if isinstance(found, dict) and step in found:
                found = found[step]
            elif isinstance(found, list) and step.isdigit() and int(step) < len(found):
                found = found[int(step)]
            else:
                return f"the output has no field {self.field!r}"
        if found == self.value:
            return None
        return f"{self.field} is {_shown(found)}, expected {_shown(self.value)}"


PromptCheck = Annotated[
    ExactCheck | ContainsCheck | RegexCheck | SchemaCheck | FieldCheck, Field(discriminator="type")
]


class PromptTestCase(Strict):
    """A saved input and what its answer must be: run before a version is published."""

    name: str = Field(min_length=1, max_length=100)
    input: dict[str, Any]
    checks: list[PromptCheck] = Field(min_length=1, max_length=20)


class PromptApiSpec(Strict):
    messages: list[PromptMessage] = Field(
        min_length=1,
        max_length=200,
        description="system, developer, user and assistant messages (few-shot examples are "
        "user/assistant pairs); text may hold {{ name }} placeholders of input properties",
    )
    input_schema: dict[str, Any] = Field(
        description="JSON Schema (2020-12) of the call's input: an object whose properties are "
        "the template's variables"
    )
    output_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema of the answer: the provider's structured outputs where it has "
        "them; the answer is checked, repaired once, or refused",
    )
    model: ModelRef = Field(description="the model (or model group) that answers")
    parameters: PromptParameters = PromptParameters()
    max_input_bytes: int = Field(
        64 * 1024, gt=0, le=8 * 1024 * 1024, description="larger inputs are refused unread"
    )
    tests: list[PromptTestCase] = Field(
        default_factory=list,
        max_length=50,
        description="test cases run before the version is published: a failing one blocks "
        "the publication unless a team admin overrides it (recorded in the audit log)",
    )

    @model_validator(mode="after")
    def _renders(self) -> PromptApiSpec:
        try:
            template = PromptTemplate(
                [m.model_dump() for m in self.messages], self.input_schema, self.max_input_bytes
            )
            if self.output_schema is not None:
                OutputSchema(self.output_schema)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        names = [case.name for case in self.tests]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tests: each test case has its own name ({twice} twice)")
        for i, case in enumerate(self.tests):
            try:
                template.check_input(case.input)
            except InputError as exc:
                raise ValueError(f"tests[{i}].input does not fit input_schema: {exc}") from None
        return self

    def template(self) -> PromptTemplate:
        return PromptTemplate(
            [m.model_dump() for m in self.messages], self.input_schema, self.max_input_bytes
        )

    def output(self) -> OutputSchema | None:
        return OutputSchema(self.output_schema) if self.output_schema is not None else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
