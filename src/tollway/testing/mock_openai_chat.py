"""OpenAI's Chat Completions (`POST /v1/chat/completions`) and legacy Completions
(`POST /v1/completions`) as the mock provider answers them: the request reduced to an `Ask`,
and the reply as one body or as stream chunks (the role, tool-call deltas with their
arguments in pieces, the text, the finish reason, a usage chunk when
`stream_options.include_usage` asks for one, then `[DONE]`). With `reasoning_effort` the usage
counts reasoning tokens, as a reasoning model's does. The bodies themselves are built by
mock_openai.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.testing import mock_openai as wire
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_reply import Ask, Reply

# What a reasoning model thinks before it answers (never shown: only counted in usage).
REASONING = "The user asked a question; consider it, then answer briefly."
# Chat Completions reports a matched stop sequence as a plain "stop".
_FINISH = {"stop_sequence": "stop"}
# /v1/completions defaults to 16 tokens, as OpenAI's does.
_COMPLETIONS_MAX_TOKENS = 16


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    return [stop] if isinstance(stop, str) else list(stop or [])


def _include_usage(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


# -- chat completions ------------------------------------------------------------------------


def chat_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI would refuse with a 400 before answering, or None."""
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be an array of objects"
    return None


def chat_ask(body: dict[str, Any]) -> Ask:
    messages: list[dict[str, Any]] = body.get("messages") or []
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") in ("system", "developer") and not results:
            continue  # a system message after the tool results
        if message.get("role") != "tool":
            break
        results.append(wire.message_text(message.get("content")))
    last_user = next(
        (
            wire.message_text(m.get("content"))
            for m in reversed(messages)
            if m.get("role") == "user"
        ),
        "",
    )
    tools = [
        (t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if t.get("type") == "function"
    ]
    choice = body.get("tool_choice")
    fmt = body.get("response_format") or {}
    schema = None
    if fmt.get("type") == "json_object":
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    elif fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return Ask(
        last_user,
        list(reversed(results)) if results else None,
        tools,
        (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None,
        choice == "none",
        schema,
        max_tokens if isinstance(max_tokens, int) else None,
        _stops(body),
        answered=any(m.get("role") == "assistant" for m in messages),
    )


def chat_usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """The usage, with the reasoning a reasoning model does (`reasoning_effort` other than
    none) counted in completion_tokens and as reasoning_tokens, as OpenAI reports it."""
    effort = body.get("reasoning_effort")
    reasoning = wire.count_tokens(REASONING) if effort not in (None, "none") else 0
    use = wire.usage(
        wire.prompt_tokens(body.get("messages") or []), reply.completion_tokens + reasoning
    )
    use["completion_tokens_details"]["reasoning_tokens"] = reasoning
    return use


def chat_body(cid: str, created: int, model: str, reply: Reply, body: dict[str, Any]) -> bytes:
    """The whole `chat.completion`, with `n` identical choices when `n` asks for several."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if reply.tool_calls else reply.text,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            }
            for c in reply.tool_calls
        ]
    n = body.get("n") or 1
    return wire.chat_completion(
        cid,
        created,
        model,
        message,
        _FINISH.get(reply.finish, reply.finish),
        n if isinstance(n, int) and n > 0 else 1,
        chat_usage(body, reply),
    )


def chat_stream(
    cid: str, created: int, model: str, reply: Reply, body: dict[str, Any], spec: FaultSpec
) -> list[bytes]:
    """The reply as `chat.completion.chunk` events, text split into `spec.chunks` pieces
    (each padded by `spec.pad` dots) and each tool call's arguments in about three."""
    include_usage = _include_usage(body)

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return wire.chat_chunk(cid, created, model, delta, reason, include_usage)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    for i, call in enumerate(reply.tool_calls):
        head = {"index": i, "id": call.id, "type": "function"}
        events.append(
            chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        )
        arguments = call.arguments_json
        third = max(1, len(arguments) // 3)
        for start in range(0, len(arguments), third):
            fragment = {"index": i, "function": {"arguments": arguments[start : start + third]}}
            events.append(chunk({"tool_calls": [fragment]}))
    text = "" if reply.tool_calls else reply.text  # as the whole body has it
    for piece in wire.split_evenly(text.split(" ") if text else [], spec.chunks):
        events.append(chunk({"content": piece + "." * spec.pad if spec.pad else piece}))
    events.append(chunk({}, _FINISH.get(reply.finish, reply.finish)))
    if include_usage:
        events.append(wire.chat_usage_chunk(cid, created, model, chat_usage(body, reply)))
    events.append(wire.DONE)
    return events


# -- legacy completions ----------------------------------------------------------------------


def _prompt_text(body: dict[str, Any]) -> str:
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    return " ".join(p for p in prompt if isinstance(p, str))


def completion_ask(body: dict[str, Any]) -> Ask:
    return Ask(
        _prompt_text(body),
        max_tokens=body.get("max_tokens", _COMPLETIONS_MAX_TOKENS),
        stop=_stops(body),
    )


def _completion_finish(reply: Reply) -> str:
    return "length" if reply.finish == "length" else "stop"


def _completion_usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return wire.usage(wire.count_tokens(_prompt_text(body)), reply.completion_tokens)


def completion_body(
    cid: str, created: int, model: str, reply: Reply, body: dict[str, Any]
) -> bytes:
    finish, use = _completion_finish(reply), _completion_usage(body, reply)
    return orjson.dumps(wire.text_completion(cid, created, model, reply.text, finish, use, False))


def completion_stream(
    cid: str, created: int, model: str, reply: Reply, body: dict[str, Any], chunks: int
) -> list[bytes]:
    """The text in `chunks` pieces, the finish reason on the last, then a usage chunk when
    asked for, then `[DONE]`."""
    finish, use = _completion_finish(reply), _completion_usage(body, reply)
    pieces = wire.split_evenly(reply.text.split(" ") if reply.text else [], chunks)
    events = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        events.append(
            wire.sse(
                wire.text_completion(
                    cid, created, model, piece, finish if last else None, None, True
                )
            )
        )
    if _include_usage(body):
        events.append(wire.sse(wire.text_completion(cid, created, model, None, "", use, True)))
    events.append(wire.DONE)
    return events
