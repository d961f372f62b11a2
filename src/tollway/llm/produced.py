"""Usage counted by the gateway when the provider's is missing or partial.

Providers report usage at the end of an answer (OpenAI's usage chunk, Anthropic's
`message_delta`, Bedrock's metadata event). A stream cut short (the client gone, the upstream
failing midway) never gets there, and some OpenAI-compatible servers report nothing at all.
Such a call is still metered for what it produced: its input counted from the request, its
output from what the client was sent, with the model's tokenizer (llm/tokens.py: exact for
OpenAI's encodings, the documented approximation elsewhere). Reported figures are kept where
they exist (Anthropic reports the input at the start of a stream); counted ones fill the rest.

Streams are kept as they go out (`Delivered`, up to a cap) and read only if the usage turns out
to be missing, so the common call pays one list append per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm import tokens

# What a stream keeps for counting; past it, the rest is counted in proportion to its bytes.
KEPT_BYTES = 1 << 20


class Delivered:
    """A stream's bytes as they went to the client."""

    __slots__ = ("chunks", "kept", "total")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if self.kept < KEPT_BYTES:
            self.chunks.append(data)
            self.kept += len(data)


def counted_usage(
    family: str,
    model: str,
    request_body: bytes,
    canonical_request: Any,
    answer: bytes | Delivered | None,
    reported: dict[str, Any] | None,
) -> dict[str, Any]:
    """Canonical usage with what `reported` lacks counted: input from the request (given in
    the canonical form by `canonical_request(parsed_body)`), output from `answer` (a whole
    body, or a stream's delivered events, in the client API's format)."""
    counter = tokens.counter_for(model)
    reported = reported or {}
    prompt = int(reported.get("prompt_tokens") or 0)
    if not prompt:
        prompt = _input_tokens(counter, request_body, canonical_request)
    visible, reasoning = _output_tokens(counter, family, answer)
    told = int(reported.get("completion_tokens") or 0)
    told_reasoning = int(
        (reported.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    )
    reasoning = max(reasoning, told_reasoning)
    completion = max(told, visible + reasoning)
    usage: dict[str, Any] = {
        **reported,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "counted": True,
    }
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _input_tokens(counter: tokens.Counter, body: bytes, canonical_request: Any) -> int:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(parsed, dict):
        return 0
    if "messages" in parsed:
        try:
            return counter.chat(canonical_request(parsed))
        except (GatewayError, TypeError, ValueError, KeyError, AttributeError):
            return counter.text(orjson.dumps(parsed["messages"]).decode())
    text = parsed.get("input", parsed.get("prompt", ""))
    count = counter.text(text if isinstance(text, str) else orjson.dumps(text).decode())
    instructions = parsed.get("instructions")
    if isinstance(instructions, str):
        count += counter.text(instructions)
    return count


def _output_tokens(
    counter: tokens.Counter, family: str, answer: bytes | Delivered | None
) -> tuple[int, int]:
    """(visible, reasoning) tokens of what the answer carried."""
    if answer is None:
        return 0, 0
    visible: list[str] = []
    reasoning: list[str] = []
    if isinstance(answer, Delivered):
        for data in _events(answer.chunks):
            _stream_texts(family, data, visible, reasoning)
    else:
        try:
            data = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return 0, 0
        if isinstance(data, dict):
            _whole_texts(family, data, visible, reasoning)
    seen, thought = counter.text("".join(visible)), counter.text("".join(reasoning))
    if isinstance(answer, Delivered) and answer.total > answer.kept and answer.kept:
        scale = answer.total / answer.kept
        seen, thought = round(seen * scale), round(thought * scale)
    return seen, thought


def _events(chunks: list[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON payload of each `data:` line of the delivered events."""
    for line in b"".join(chunks).split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            yield data


def _stream_texts(
    family: str, data: dict[str, Any], visible: list[str], thought: list[str]
) -> None:
    kind = data.get("type")
    if family == "anthropic":
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            _take(delta, ("text", "partial_json"), visible)
            _take(delta, ("thinking",), thought)
        elif kind == "content_block_start":
            _take(data.get("content_block") or {}, ("name", "text"), visible)
        return
    if isinstance(kind, str):  # the Responses API's events
        if kind.endswith(".delta") and isinstance(data.get("delta"), str):
            (thought if "reasoning" in kind else visible).append(data["delta"])
        elif kind == "response.output_item.added":
            _take(data.get("item") or {}, ("name",), visible)
        return
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            _choice_texts(choice.get("delta") or choice, visible, thought)


def _whole_texts(family: str, data: dict[str, Any], visible: list[str], thought: list[str]) -> None:
    if family == "anthropic":
        for block in data.get("content") or ():
            if isinstance(block, dict):
                _take(block, ("text", "name"), visible)
                _take(block, ("thinking",), thought)
                if block.get("input") is not None:
                    visible.append(orjson.dumps(block["input"]).decode())
        return
    if isinstance(data.get("output"), list):  # a Responses API answer
        for item in data["output"]:
            if not isinstance(item, dict):
                continue
            _take(item, ("name", "arguments"), visible)
            for part in item.get("content") or ():
                if isinstance(part, dict):
                    _take(part, ("text",), thought if item.get("type") == "reasoning" else visible)
            for part in item.get("summary") or ():
                if isinstance(part, dict):
                    _take(part, ("text",), thought)
        return
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            _choice_texts(choice.get("message") or choice, visible, thought)


def _choice_texts(part: dict[str, Any], visible: list[str], thought: list[str]) -> None:
    """A chat choice's message or delta, or a completion's choice."""
    _take(part, ("content", "text"), visible)
    _take(part, ("reasoning_content", "reasoning"), thought)
    for call in part.get("tool_calls") or ():
        if isinstance(call, dict):
            _take(call.get("function") or {}, ("name", "arguments"), visible)


def _take(source: Any, keys: tuple[str, ...], into: list[str]) -> None:
    if not isinstance(source, dict):
        return
    for key in keys:
        value = source.get(key)
        if isinstance(value, str):
            into.append(value)
