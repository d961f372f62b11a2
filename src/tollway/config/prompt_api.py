"""What one version of a prompt API is: a prompt template (messages with typed variables), the
model that answers it, the call's parameters, and optionally the answer's JSON Schema.

The same model is the admin API's input and the YAML's; it is checked whole when defined (the
template parsed, its placeholders matched to the input schema's properties, both schemas
checked), so a published version can always be rendered. The schemas are kept as given: the
generated OpenAPI document and the MCP tools use them as they are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tollway.config.fields import ModelRef, Strict
from tollway.llm.prompt_template import PromptTemplate, TemplateError
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

    @model_validator(mode="after")
    def _renders(self) -> PromptApiSpec:
        try:
            PromptTemplate(
                [m.model_dump() for m in self.messages], self.input_schema, self.max_input_bytes
            )
            if self.output_schema is not None:
                OutputSchema(self.output_schema)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self

    def template(self) -> PromptTemplate:
        return PromptTemplate(
            [m.model_dump() for m in self.messages], self.input_schema, self.max_input_bytes
        )

    def output(self) -> OutputSchema | None:
        return OutputSchema(self.output_schema) if self.output_schema is not None else None
