"""Cohere's v2 API as the mock provider speaks it: `POST /v2/chat` (plain and streamed, with
tool calls and a tool plan) and `POST /v2/embed`. Errors are `{"id", "message"}`; a tool
message must answer a tool call id of the assistant turn before it, as Cohere checks."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.testing import mock_openai as wire
from tollway.testing.mock_reply import Ask, Reply

FINISH = {
    "stop": "COMPLETE",
    "stop_sequence": "STOP_SEQUENCE",
    "length": "MAX_TOKENS",
    "tool_calls": "TOOL_CALL",
}


def error(status: int, message: str | None = None) -> bytes:
    return orjson.dumps({"id": "mock-error", "message": message or f"Mock error {status}."})


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"
    )


def stream_error_event() -> bytes:
    return event(
        "message-end",
        {"delta": {"finish_reason": "ERROR", "error": "internal error (mock, mid-stream)"}},
    )


def _text(content: Any) -> str:
    """Text parts, and the data of document parts (how tool results often come)."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            out.append(part.get("text", ""))
        elif part.get("type") == "document":
            data = (part.get("document") or {}).get("data")
            out.append(data if isinstance(data, str) else orjson.dumps(data).decode())
    return " ".join(out)


def validate(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "invalid request: messages must not be empty"
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            open_calls = {c.get("id") for c in message.get("tool_calls") or []}
        elif role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return (
                    f"invalid request: messages[{i}]: tool_call_id "
                    f"{message.get('tool_call_id')!r} does not match a tool call"
                )
        elif role == "user":
            open_calls = set()
    return None


def ask(body: dict[str, Any]) -> Ask:
    messages = body["messages"]
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") == "system" and not results:
            continue  # a system message after the tool results
        if message.get("role") != "tool":
            break
        results.append(_text(message.get("content")))
    last_user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    tools = [
        (t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if t.get("type") == "function"
    ]
    fmt = body.get("response_format") or {}
    schema = (
        (fmt.get("json_schema") or {"type": "object", "properties": {"answer": {"type": "string"}}})
        if fmt.get("type") == "json_object"
        else None
    )
    return Ask(
        last_user,
        list(reversed(results)) or None,
        tools,
        None,
        body.get("tool_choice") == "NONE",
        schema,
        body.get("max_tokens"),
        list(body.get("stop_sequences") or []),
    )


def usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt = (
        sum(
            wire.count_tokens(_text(m.get("content")) or orjson.dumps(m).decode())
            for m in body["messages"]
        )
        + 4
    )
    counts = {"input_tokens": prompt, "output_tokens": reply.completion_tokens}
    return {"billed_units": counts, "tokens": counts}


def response(mid: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if reply.tool_calls:
        message["tool_plan"] = "I will call the tools to answer."
        message["tool_calls"] = [
            {
                "id": f"{c.name}_{c.id}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            }
            for c in reply.tool_calls
        ]
    else:
        message["content"] = [{"type": "text", "text": reply.text}]
    return {
        "id": mid,
        "finish_reason": FINISH[reply.finish],
        "message": message,
        "usage": usage(body, reply),
    }


def stream_events(full: dict[str, Any], chunks: int) -> list[bytes]:
    message = full["message"]
    out = [
        event(
            "message-start",
            {
                "id": full["id"],
                "delta": {
                    "message": {
                        "role": "assistant",
                        "content": [],
                        "tool_plan": "",
                        "tool_calls": [],
                        "citations": [],
                    }
                },
            },
        )
    ]
    if message.get("tool_plan"):
        out.append(
            event("tool-plan-delta", {"delta": {"message": {"tool_plan": message["tool_plan"]}}})
        )
    for i, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        out.append(
            event(
                "tool-call-start",
                {
                    "index": i,
                    "delta": {
                        "message": {
                            "tool_calls": {
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        }
                    },
                },
            )
        )
        half = max(1, len(arguments) // 2)
        for start in range(0, len(arguments), half):
            out.append(
                event(
                    "tool-call-delta",
                    {
                        "index": i,
                        "delta": {
                            "message": {
                                "tool_calls": {
                                    "function": {"arguments": arguments[start : start + half]}
                                }
                            }
                        },
                    },
                )
            )
        out.append(event("tool-call-end", {"index": i}))
    for part in message.get("content") or []:
        out.append(
            event(
                "content-start",
                {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
            )
        )
        for piece in wire.split_evenly(part["text"].split(" "), chunks):
            out.append(
                event(
                    "content-delta",
                    {"index": 0, "delta": {"message": {"content": {"text": piece}}}},
                )
            )
        out.append(event("content-end", {"index": 0}))
    out.append(
        event(
            "message-end",
            {"delta": {"finish_reason": full["finish_reason"], "usage": full["usage"]}},
        )
    )
    return out


def embed(mid: str, body: dict[str, Any]) -> dict[str, Any] | str:
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts:
        return "invalid request: texts must not be empty"
    if not body.get("input_type"):
        return "invalid request: input_type is required for embed-v3 and newer models"
    dims = body.get("output_dimension") or 256
    return {
        "id": mid,
        "texts": texts,
        "response_type": "embeddings_by_type",
        "embeddings": {"float": [wire.embedding_vector(t, dims) for t in texts]},
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"input_tokens": sum(wire.count_tokens(t) for t in texts)},
        },
    }
