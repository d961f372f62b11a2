"""Prompt templates: messages with typed variables, rendered safely.

A template is a list of messages (system, developer, user, assistant: few-shot examples are
user/assistant pairs) whose text may hold placeholders, `{{ name }}`, each naming a property
of the template's input schema (a JSON Schema object). The syntax has nothing else: no
attribute access, filters, loops or expressions, so a template cannot run code and a value
cannot become template code. Templates are parsed once, when defined; rendering substitutes
values into the parsed pieces in one pass, so a value that holds `{{ other }}` is sent as
those characters. A string value goes in as it is; any other value as its JSON text. `\\{{`
writes a literal `{{`.

Input is checked before anything is rendered: its size (in bytes, before parsing), then the
schema (every problem named by its place in the input, `$.text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator, SchemaError

ROLES = ("system", "developer", "user", "assistant")
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*\}\}")
# The most problems one answer lists (a huge input may have thousands).
_MAX_PROBLEMS = 20


class TemplateError(ValueError):
    """A template that cannot be defined as it is (the author's mistake)."""


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One thing wrong with a call's input: where (a JSON path) and what."""

    path: str
    message: str


class InputError(ValueError):
    """A call's input that the template refuses (the caller's mistake)."""

    def __init__(self, problems: Sequence[InputProblem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{first.path}: {first.message}{more}")


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str


Piece = str | Placeholder


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    role: str
    pieces: tuple[Piece, ...]


def parse_text(text: str) -> tuple[Piece, ...]:
    """A message's text as literal pieces and placeholders (TemplateError when a `{{` opens
    anything but a placeholder)."""
    pieces: list[Piece] = []
    literal: list[str] = []
    at = 0
    while True:
        opening = text.find("{{", at)
        if opening < 0:
            literal.append(text[at:])
            break
        if opening > 0 and text[opening - 1] == "\\":
            literal.append(text[at : opening - 1] + "{{")
            at = opening + 2
            continue
        literal.append(text[at:opening])
        found = _PLACEHOLDER.match(text, opening)
        if found is None:
            shown = text[opening : opening + 40]
            raise TemplateError(
                f"{shown!r} is not a placeholder: write {{{{ name }}}} with a variable's name "
                "(letters, digits, _), or \\{{ for a literal {{"
            )
        if literal:
            joined = "".join(literal)
            if joined:
                pieces.append(joined)
            literal = []
        pieces.append(Placeholder(found.group(1)))
        at = found.end()
    joined = "".join(literal)
    if joined:
        pieces.append(joined)
    return tuple(pieces)


class PromptTemplate:
    """A parsed template with its input schema, ready to render calls' inputs."""

    __slots__ = ("_validator", "input_schema", "max_input_bytes", "messages", "variables")

    def __init__(
        self,
        messages: Sequence[Mapping[str, Any]],
        input_schema: Mapping[str, Any],
        max_input_bytes: int = 64 * 1024,
    ) -> None:
        if not messages:
            raise TemplateError("a template has at least one message")
        check_schema(input_schema, "input_schema")
        if input_schema.get("type") != "object":
            raise TemplateError("input_schema: the input is an object (`type: object`)")
        declared = set((input_schema.get("properties") or {}).keys())
        parsed = []
        used: list[str] = []
        for i, message in enumerate(messages):
            role = message.get("role")
            content = message.get("content")
            if role not in ROLES:
                raise TemplateError(f"messages[{i}].role: one of {', '.join(ROLES)}")
            if not isinstance(content, str):
                raise TemplateError(f"messages[{i}].content: text")
            try:
                pieces = parse_text(content)
            except TemplateError as exc:
                raise TemplateError(f"messages[{i}].content: {exc}") from None
            for piece in pieces:
                if isinstance(piece, Placeholder):
                    if piece.name not in declared:
                        raise TemplateError(
                            f"messages[{i}].content: {{{{ {piece.name} }}}} is not a property "
                            "of input_schema"
                        )
                    used.append(piece.name)
            parsed.append(TemplateMessage(role, pieces))
        self.messages = tuple(parsed)
        self.variables = tuple(dict.fromkeys(used))
        self.input_schema = dict(input_schema)
        self.max_input_bytes = max_input_bytes
        self._validator = Draft202012Validator(self.input_schema)

    def read_input(self, raw: bytes) -> dict[str, Any]:
        """A call's input, parsed and checked (InputError naming each problem)."""
        if len(raw) > self.max_input_bytes:
            raise InputError(
                [
                    InputProblem(
                        "$",
                        f"the input is {len(raw)} bytes, more than the {self.max_input_bytes} "
                        "this API takes",
                    )
                ]
            )
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InputError([InputProblem("$", f"not valid JSON ({exc})")]) from None
        return self.check_input(value)

    def check_input(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InputError([InputProblem("$", "the input is a JSON object")])
        problems = []
        for error in sorted(self._validator.iter_errors(value), key=lambda e: list(e.path)):
            problems.append(InputProblem(json_path(error.absolute_path), error.message))
            if len(problems) == _MAX_PROBLEMS:
                break
        if problems:
            raise InputError(problems)
        return value

    def render(self, variables: Mapping[str, Any]) -> list[dict[str, str]]:
        """The messages with the variables' values in place (checked input: see read_input).
        A variable the input leaves out (not required by the schema) renders as nothing."""
        out = []
        for message in self.messages:
            parts = []
            for piece in message.pieces:
                if isinstance(piece, str):
                    parts.append(piece)
                    continue
                value = variables.get(piece.name)
                if value is None:
                    continue
                parts.append(value if isinstance(value, str) else orjson.dumps(value).decode())
            out.append({"role": message.role, "content": "".join(parts)})
        return out


def check_schema(schema: Mapping[str, Any], field: str) -> None:
    """A JSON Schema (2020-12) that can be used, or TemplateError naming what is wrong."""
    if not isinstance(schema, Mapping):
        raise TemplateError(f"{field}: a JSON Schema object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = json_path(exc.absolute_path)
        raise TemplateError(f"{field}: not a valid JSON Schema at {where}: {exc.message}") from None


def json_path(path: Any) -> str:
    """A place in a JSON value as `$.a.b[0]`."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(step)):
            out += f".{step}"
        else:
            out += f"[{orjson.dumps(str(step)).decode()}]"
    return out
