"""Anthropic's Messages API as the mock provider speaks it.

Faithful to the documented format: `x-api-key` and `anthropic-version` headers, `max_tokens`
required, content blocks (text, tool_use, thinking with a signature), stop reasons, usage with
cache fields, the stream's event sequence (message_start, ping, content_block_start / delta /
stop, message_delta, message_stop) and errors as `{"type": "error", "error": {...}}` (529 for
overloaded). Checks a real model makes and translation bugs trip over:
- roles are user, assistant, or system (a mid-conversation system message, which it accepts
  as Claude Opus 4.8 does), a system message's content being text only;
- with budgeted thinking (`thinking.type` enabled), an assistant turn that used tools must
  carry its thinking block back, signature intact;
- every `tool_result` must answer a `tool_use` id from the turn before.
Structured outputs: `output_config.format` (or the beta's `output_format`) with a JSON schema
is answered with JSON text that fits it. Prompt caching: the tokens up to the last block
marked `cache_control` are reported as read from cache. Usage reports thinking tokens as
`output_tokens_details.thinking_tokens` (a part of output_tokens) when the model thought.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from tollway.testing import mock_openai as wire
from tollway.testing.mock_reply import Ask, Reply

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
}
THINKING_TEXT = "The user wants an answer; I will give one."


def error(status: int, message: str | None = None) -> bytes:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps(
        {"type": "error", "error": {"type": kind, "message": message or f"Mock {kind} ({status})."}}
    )


def stream_error_event() -> bytes:
    return event(
        "error",
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded (mock, mid-stream)."},
        },
    )


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def signature(text: str) -> str:
    return f"mocksig-{zlib.crc32(text.encode()):08x}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    )


def thinks(body: dict[str, Any]) -> bool:
    """Whether the request turns thinking on (a budget, or adaptive thinking)."""
    return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema the answer must fit (structured outputs), if any."""
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def validate(body: dict[str, Any]) -> str | None:
    """What a real Messages endpoint would refuse with a 400, or None."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    # Budgeted thinking must carry its signed block back; adaptive thinking (the model decides
    # whether to think) is not held to it, as clients such as Claude Code drop those blocks.
    thinking = (body.get("thinking") or {}).get("type") == "enabled"
    previous_tool_ids: set[str] = set()
    for i, message in enumerate(messages):
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            return f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
        if role == "system":
            if any(b.get("type") != "text" for b in blocks):
                return f"messages.{i}.content: a system message takes text blocks only"
            continue
        if role == "assistant":
            uses = [b for b in blocks if b.get("type") == "tool_use"]
            if thinking and uses:
                first = blocks[0] if blocks else {}
                if first.get("type") != "thinking" or first.get("signature") != signature(
                    first.get("thinking", "")
                ):
                    return (
                        f"messages.{i}.content.0.type: Expected `thinking` or "
                        "`redacted_thinking`, but found another type. When `thinking` is "
                        "enabled, a final `assistant` message must start with a thinking "
                        "block (with its signature)"
                    )
            previous_tool_ids = {b.get("id") for b in uses}
        else:
            for block in blocks:
                if (
                    block.get("type") == "tool_result"
                    and block.get("tool_use_id") not in previous_tool_ids
                ):
                    return (
                        f"messages.{i}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {block.get('tool_use_id')}"
                    )
            previous_tool_ids = set()
    return None


def ask(body: dict[str, Any]) -> Ask:
    messages = body["messages"]
    # The last turn, a system message after it aside.
    last = next((m for m in reversed(messages) if m.get("role") != "system"), messages[-1])
    results = (
        [
            b
            for b in last.get("content") or []
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        if isinstance(last.get("content"), list)
        else []
    )
    last_user = next(
        (
            _text_of(m.get("content"))
            for m in reversed(messages)
            if m.get("role") == "user" and _text_of(m.get("content"))
        ),
        "",
    )
    tools = [
        (t["name"], t.get("input_schema") or {})
        for t in body.get("tools") or []
        if "input_schema" in t
    ]
    choice = body.get("tool_choice") or {}
    return Ask(
        last_user,
        [_text_of(r.get("content")) for r in results] if results else None,
        tools,
        choice.get("name") if choice.get("type") == "tool" else None,
        choice.get("type") == "none",
        output_schema(body),
        body["max_tokens"],
        list(body.get("stop_sequences") or []),
    )


def usage(body: dict[str, Any], output_tokens: int, thinking_tokens: int = 0) -> dict[str, Any]:
    texts: list[tuple[str, bool]] = []  # (text, marked for caching)
    system = body.get("system")
    if isinstance(system, str):
        texts.append((system, False))
    else:
        texts.extend((b.get("text", ""), "cache_control" in b) for b in system or [])
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            texts.append((content, False))
            continue
        for block in content or []:
            raw = (
                block.get("text")
                or block.get("thinking")
                or orjson.dumps(block.get("input") or block.get("content") or "").decode()
            )
            texts.append((raw, "cache_control" in block))
    marked = [i for i, (_, cached) in enumerate(texts) if cached]
    cached = sum(wire.count_tokens(t) for t, _ in texts[: marked[-1] + 1]) if marked else 0
    total = sum(wire.count_tokens(t) for t, _ in texts) + 3 * len(body["messages"])
    out: dict[str, Any] = {
        "input_tokens": total - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if thinking_tokens:
        out["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return out


def message(mid: str, model: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    thought = wire.count_tokens(THINKING_TEXT) if thinks(body) else 0
    if thought:
        content.append(
            {"type": "thinking", "thinking": THINKING_TEXT, "signature": signature(THINKING_TEXT)}
        )
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_" + call.id,
                "name": call.name,
                "input": call.arguments,
            }
        )
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[reply.finish],
        "stop_sequence": reply.stop_sequence,
        "usage": usage(body, reply.completion_tokens + thought, thought),
    }


def stream_events(msg: dict[str, Any], chunks: int) -> list[bytes]:
    start_usage = {**msg["usage"], "output_tokens": 1}
    out = [
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **msg,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        event("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(msg["content"]):
        kind = block["type"]
        empty = {
            "text": {"type": "text", "text": ""},
            "thinking": {"type": "thinking", "thinking": "", "signature": ""},
            "tool_use": {**block, "input": {}},
        }[kind]
        out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
        )
        if kind == "text":
            deltas = [
                {"type": "text_delta", "text": piece}
                for piece in wire.split_evenly(block["text"].split(" "), chunks)
            ]
        elif kind == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        else:
            arguments = orjson.dumps(block["input"]).decode()
            third = max(1, len(arguments) // 3)
            deltas = [
                {"type": "input_json_delta", "partial_json": arguments[i : i + third]}
                for i in range(0, len(arguments), third)
            ]
        out.extend(
            event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
            )
            for d in deltas
        )
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
                "usage": {
                    key: value
                    for key, value in msg["usage"].items()
                    if key in ("output_tokens", "output_tokens_details")
                },
            },
        )
    )
    out.append(event("message_stop", {"type": "message_stop"}))
    return out


def count_tokens(body: dict[str, Any]) -> dict[str, int]:
    use = usage(body, 0)
    return {"input_tokens": use["input_tokens"] + use["cache_read_input_tokens"]}
