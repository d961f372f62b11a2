"""What the mock provider answers, decided once for every wire format it speaks.

The rules, in order:
1. the last turn carries tool results: reply "tool said: <results>" (so tests can see that a
   result reached the model);
2. tools are offered and not switched off: call the forced tool, else the tool named by the
   `tool` setting (when it is offered; when it is not, go on to 3), else the first
   `tool_calls` tools, with arguments made from each tool's JSON schema (always an object,
   `{}` for a tool without parameters), after a sentence of text with `preamble`;
3. a JSON answer is asked for (OpenAI's response_format): a JSON object made from the schema;
4. otherwise deterministic words (or the last user message, with `echo`).
A text reply stops early at the first stop sequence it contains, or at max_tokens words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.testing import mock_openai as wire
from tollway.testing.mock_faults import FaultSpec

# What a model says before its tool calls, with the `preamble` setting.
PREAMBLE = "Let me look that up."


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    # "stop", "length", "stop_sequence" or "tool_calls"
    finish: str
    completion_tokens: int
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Ask:
    """A request reduced to what decides the reply, whatever its wire format."""

    last_user_text: str
    tool_results: list[str] | None = None
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    forced_tool: str | None = None
    tools_off: bool = False
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    # The conversation already holds an answer of the model's (an assistant turn).
    answered: bool = False


def value_for(schema: dict[str, Any], name: str = "value") -> Any:
    """A plausible value that satisfies a (simple) JSON schema."""
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        kind = kind.lower()  # OpenAPI-style schemas (Gemini's) write OBJECT, STRING, ...
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        required = schema.get("required") or list(properties)
        return {key: value_for(properties.get(key) or {}, key) for key in required}
    if kind == "array":
        return [value_for(schema.get("items") or {}, name)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(
        kind or "string", f"mock {name}"
    )


def arguments_for(parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool call's arguments for a tool's parameter schema: always a JSON object, as every
    provider's tool calls carry one (`{}` for an empty schema, or for a tool with none)."""
    value = value_for({"type": "object", **parameters})
    return value if isinstance(value, dict) else {}


def plan(ask: Ask, spec: FaultSpec, call_id_prefix: str) -> Reply:
    if ask.tool_results is not None:
        return _text("tool said: " + " | ".join(ask.tool_results), ask)
    chosen: list[tuple[str, dict[str, Any]]] = []
    if ask.tools and not ask.tools_off:
        if ask.forced_tool is not None:
            chosen = [t for t in ask.tools if t[0] == ask.forced_tool][:1]
        elif spec.tool is not None:
            chosen = [t for t in ask.tools if t[0] == spec.tool][:1]
        else:
            chosen = ask.tools[: max(1, spec.tool_calls)]
    if chosen:
        calls = [
            ToolCall(f"{call_id_prefix}_{i}", name, arguments_for(schema))
            for i, (name, schema) in enumerate(chosen)
        ]
        text = PREAMBLE if spec.preamble else ""
        tokens = sum(wire.count_tokens(c.arguments_json) for c in calls) + len(text.split())
        return Reply(text, "tool_calls", tokens, calls)
    if ask.json_schema is not None:
        value = value_for(ask.json_schema)
        if spec.json_slip and not ask.answered and isinstance(value, dict):
            required = ask.json_schema.get("required") or list(value)
            if required:
                value.pop(required[0], None)
            text = "Here you go: " + orjson.dumps(value).decode()
        else:
            text = orjson.dumps(value).decode()
        return Reply(text, "stop", wire.count_tokens(text))
    text = (
        ask.last_user_text
        if spec.echo
        else " ".join(wire.reply_words(ask.last_user_text, spec.words))
    )
    return _text(text, ask)


def _text(text: str, ask: Ask) -> Reply:
    finish, matched = "stop", None
    for stop in ask.stop:
        at = text.find(stop) if stop else -1
        if at >= 0 and (matched is None or at < text.find(matched)):
            matched = stop
    if matched is not None:
        text, finish = text[: text.find(matched)].rstrip(), "stop_sequence"
    words = text.split()
    if ask.max_tokens is not None and 0 < ask.max_tokens < len(words):
        words, finish, matched = words[: ask.max_tokens], "length", None
    return Reply(" ".join(words), finish, len(words), stop_sequence=matched)
