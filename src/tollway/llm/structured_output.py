"""An answer that must be JSON of a schema (a prompt API's output schema): read, checked, and
what to ask for when it is not.

Where the provider has structured outputs, the schema is sent with the call and the answer
should already fit; elsewhere (and as a check everywhere) the answer's text is read here. A
model's usual slips are forgiven when reading: a ```json fence, prose before or after the
value. An answer that still does not fit gets one repair turn (`repair_messages`: the model is
shown its answer and what is wrong with it); an answer that does not fit after that is refused
with the problems named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from tollway.llm.prompt_template import check_schema, json_path

_MAX_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class Checked:
    """An answer read against the schema: its value when it fits, else what is wrong."""

    value: Any
    problems: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.problems


class OutputSchema:
    __slots__ = ("_validator", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        check_schema(schema, "output_schema")
        self.schema = dict(schema)
        self._validator = Draft202012Validator(self.schema)

    def read(self, text: str) -> Checked:
        value = _json_in(text)
        if value is _NOTHING:
            return Checked(None, ("the answer is not JSON",))
        problems = []
        for error in self._validator.iter_errors(value):
            problems.append(f"{json_path(error.absolute_path)}: {error.message}")
            if len(problems) == _MAX_PROBLEMS:
                break
        return Checked(value, tuple(problems))

    def repair_messages(self, answer: str, checked: Checked) -> list[dict[str, str]]:
        """What follows the conversation to ask the model, once, for a fitting answer."""
        schema = orjson.dumps(self.schema).decode()
        wrong = "\n".join(f"- {p}" for p in checked.problems)
        return [
            {"role": "assistant", "content": answer},
            {
                "role": "user",
                "content": "Your answer must be one JSON value that fits this JSON Schema, with "
                f"nothing before or after it:\n{schema}\nWhat is wrong with it:\n{wrong}\n"
                "Answer again with the JSON value only.",
            },
        ]


_NOTHING = object()


def _json_in(text: str) -> Any:
    """The JSON value an answer holds: the whole text, or inside a ``` fence, or the first
    object or array in it (prose around it left out). _NOTHING when there is none."""
    stripped = text.strip()
    for candidate in (stripped, _unfenced(stripped)):
        if candidate is None:
            continue
        try:
            return orjson.loads(candidate)
        except orjson.JSONDecodeError:
            pass
    for opening, closing in (("{", "}"), ("[", "]")):
        start = stripped.find(opening)
        end = stripped.rfind(closing)
        if 0 <= start < end:
            try:
                return orjson.loads(stripped[start : end + 1])
            except orjson.JSONDecodeError:
                continue
    return _NOTHING


def _unfenced(text: str) -> str | None:
    start = text.find("```")
    if start < 0:
        return None
    body_at = text.find("\n", start)
    end = text.find("```", body_at + 1) if body_at >= 0 else -1
    if body_at < 0 or end < 0:
        return None
    return text[body_at + 1 : end].strip()
