"""The Bedrock adapter reading Converse answers, ConverseStream events (built with
aws_eventstream.encode, the same framing AWS sends) and errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.errors import GatewayError
from tollway.providers.aws_eventstream import encode
from tollway.providers.base import ProviderStreamError
from tollway.providers.bedrock import BedrockAdapter

ADAPTER = BedrockAdapter()
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
# The tool that carries JSON mode (response_format), as the adapter names it to Bedrock.
JSON_TOOL = "tollway_json_response"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
HI = [{"role": "user", "content": "hi"}]


def converse(request: dict[str, Any], stream: bool = False) -> Any:
    return orjson.loads(ADAPTER.chat_call(request, MODEL, stream).body)


def refusal(request: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        ADAPTER.chat_call(request, MODEL, False)
    assert info.value.status == 400
    return info.value


# -- response -------------------------------------------------------------------------------------

USAGE = {
    "inputTokens": 10,
    "outputTokens": 25,
    "totalTokens": 115,
    "cacheReadInputTokens": 60,
    "cacheWriteInputTokens": 20,
}


def answer(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    reply = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": USAGE,
        "metrics": {"latencyMs": 300},
    }
    return ADAPTER.chat_response(orjson.dumps(reply), "claude")


def test_a_text_answer() -> None:
    completion = answer([{"text": "Sunny"}, {"text": " and warm."}])
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "claude"
    [only] = completion["choices"]
    assert only["finish_reason"] == "stop"
    assert only["message"]["role"] == "assistant"
    assert only["message"]["content"] == "Sunny and warm."
    assert "tool_calls" not in only["message"]


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = answer([{"text": "ok"}])["usage"]
    assert usage["prompt_tokens"] == 10 + 60 + 20
    assert usage["completion_tokens"] == 25
    assert usage["total_tokens"] == 115
    assert usage["prompt_tokens_details"]["cached_tokens"] == 60
    assert usage["cache_creation_input_tokens"] == 20


def test_tool_use_becomes_tool_calls() -> None:
    completion = answer(
        [
            {
                "toolUse": {
                    "toolUseId": "tooluse_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            },
            {"toolUse": {"toolUseId": "tooluse_2", "name": "now", "input": {}}},
        ],
        "tool_use",
    )
    message = completion["choices"][0]["message"]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    assert [
        (c["id"], c["type"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in message["tool_calls"]
    ] == [
        ("tooluse_1", "function", "get_weather", {"city": "Paris"}),
        ("tooluse_2", "function", "now", {}),
    ]


def test_reasoning_comes_back_with_its_signature() -> None:
    completion = answer(
        [
            {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "c2ln"}}},
            {"text": "Done."},
        ]
    )
    message = completion["choices"][0]["message"]
    assert message["content"] == "Done."
    assert message["reasoning_content"] == "Think."
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Think.", "signature": "c2ln"}
    ]


def test_the_json_tool_answer_is_the_message_content() -> None:
    completion = answer(
        [{"toolUse": {"toolUseId": "t", "name": JSON_TOOL, "input": {"answer": "42"}}}], "tool_use"
    )
    [only] = completion["choices"]
    assert orjson.loads(only["message"]["content"]) == {"answer": "42"}
    assert only["finish_reason"] == "stop"
    assert "tool_calls" not in only["message"]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    assert answer([{"text": "x"}], stop)["choices"][0]["finish_reason"] == finish


# -- stream ---------------------------------------------------------------------------------------


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return encode(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        orjson.dumps(payload),
    )


def exception(name: str, message: str) -> bytes:
    return encode(
        {
            ":exception-type": name,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": message}),
    )


def delta(index: int, body: dict[str, Any]) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": body})


def tool_start(index: int, use_id: str, name: str) -> bytes:
    return event(
        "contentBlockStart",
        {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": use_id, "name": name}}},
    )


STREAM_USAGE = {
    "inputTokens": 30,
    "outputTokens": 40,
    "totalTokens": 80,
    "cacheReadInputTokens": 10,
    "cacheWriteInputTokens": 0,
}
# Reasoning, text, then two tool calls whose input arrives in pieces.
RECORDED = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        delta(0, {"reasoningContent": {"text": "Two cities, "}}),
        delta(0, {"reasoningContent": {"text": "two calls."}}),
        delta(0, {"reasoningContent": {"signature": "c2lnbmVk"}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        delta(1, {"text": "Checking"}),
        delta(1, {"text": " both."}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        tool_start(2, "tooluse_p", "get_weather"),
        delta(2, {"toolUse": {"input": '{"city":'}}),
        delta(2, {"toolUse": {"input": '"Paris"}'}}),
        event("contentBlockStop", {"contentBlockIndex": 2}),
        tool_start(3, "tooluse_r", "get_weather"),
        delta(3, {"toolUse": {"input": '{"city":"Rome"}'}}),
        event("contentBlockStop", {"contentBlockIndex": 3}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": STREAM_USAGE, "metrics": {"latencyMs": 900}}),
    ]
)


def run(raw: bytes, size: int = 1 << 20) -> tuple[list[dict[str, Any]], Any]:
    stream = ADAPTER.chat_stream("claude")
    chunks: list[dict[str, Any]] = []
    for i in range(0, len(raw), size):
        chunks.extend(stream.feed(raw[i : i + size]))
    chunks.extend(stream.finish())
    return chunks, stream


@pytest.mark.parametrize("size", [1, 13, 1 << 20])
def test_recorded_stream_maps_to_canonical_chunks(size: int) -> None:
    chunks, stream = run(RECORDED, size)
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "claude" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Two cities, two calls."
    assert [b for d in deltas for b in d.get("thinking_blocks", [])] == [
        {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "c2lnbmVk"}
    ]
    assert "".join(d.get("content") or "" for d in deltas) == "Checking both."
    calls = [t for d in deltas for t in d.get("tool_calls", [])]
    starts = [t for t in calls if "id" in t]
    assert starts == [
        {
            "index": 0,
            "id": "tooluse_p",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "tooluse_r",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    ]
    for index, arguments in ((0, '{"city":"Paris"}'), (1, '{"city":"Rome"}')):
        assert (
            "".join(t["function"]["arguments"] for t in calls if t["index"] == index) == arguments
        )
    finish, closing = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert closing["choices"] == []
    assert closing["usage"]["prompt_tokens"] == 40
    assert closing["usage"]["prompt_tokens_details"]["cached_tokens"] == 10
    assert closing["usage"]["completion_tokens"] == 40
    assert stream.usage == closing["usage"]


def test_a_streamed_json_tool_answer_is_streamed_content() -> None:
    chunks, _ = run(
        b"".join(
            [
                event("messageStart", {"role": "assistant"}),
                tool_start(0, "t", JSON_TOOL),
                delta(0, {"toolUse": {"input": '{"answer":'}}),
                delta(0, {"toolUse": {"input": '"42"}'}}),
                event("contentBlockStop", {"contentBlockIndex": 0}),
                event("messageStop", {"stopReason": "tool_use"}),
                event("metadata", {"usage": STREAM_USAGE}),
            ]
        )
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == '{"answer":"42"}'
    assert not any("tool_calls" in d for d in deltas)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("throttlingException", (429, "rate_limit_exceeded")),
        ("modelStreamErrorException", (502, "upstream_stream_interrupted")),
        ("serviceUnavailableException", (503, "overloaded")),
        ("validationException", (400, "invalid_request")),
        ("somethingNewException", (502, "upstream_error")),
    ],
)
def test_an_exception_in_the_stream_is_raised(name: str, expected: tuple[int, str]) -> None:
    stream = ADAPTER.chat_stream("claude")
    stream.feed(event("messageStart", {"role": "assistant"}) + delta(0, {"text": "Hel"}))
    with pytest.raises(ProviderStreamError) as info:
        stream.feed(exception(name, "It broke."))
    assert (info.value.error.status, info.value.error.code) == expected
    assert info.value.error.message == "It broke."


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        RECORDED[: RECORDED.index(event("messageStop", {"stopReason": "tool_use"}))],
        # messageStop arrived, then the connection broke inside the next message.
        event("messageStart", {"role": "assistant"})
        + event("messageStop", {"stopReason": "end_turn"})
        + event("metadata", {"usage": STREAM_USAGE})[:20],
    ],
    ids=["empty", "before messageStop", "inside a message"],
)
def test_a_stream_that_stops_early_is_truncated(raw: bytes) -> None:
    stream = ADAPTER.chat_stream("claude")
    stream.feed(raw)
    with pytest.raises(ProviderStreamError) as info:
        stream.finish()
    assert (info.value.error.status, info.value.error.code) == (502, "upstream_stream_truncated")


def test_a_corrupted_event_stream_is_a_protocol_error() -> None:
    raw = bytearray(event("messageStart", {"role": "assistant"}))
    raw[-1] ^= 0xFF  # the message CRC no longer matches
    stream = ADAPTER.chat_stream("claude")
    with pytest.raises(ProviderStreamError) as info:
        stream.feed(bytes(raw))
    assert (info.value.error.status, info.value.error.code) == (502, "upstream_protocol")


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "Malformed input request, please reformat your input.", (400, "invalid_request")),
        (
            400,
            "Input is too long for requested model.",
            (400, "context_length_exceeded"),
        ),
        (
            400,
            "The model returned the following errors: too many input tokens",
            (400, "context_length_exceeded"),
        ),
        (
            403,
            "You don't have access to the model with the specified model ID.",
            (403, "permission_denied"),
        ),
        (404, "Could not resolve the foundation model.", (404, "model_not_found")),
        (429, "Too many requests, please wait before trying again.", (429, "rate_limit_exceeded")),
        (503, "Bedrock is unable to process your request.", (503, "overloaded")),
        # A model error (424) is the upstream failing, not the client's request.
        (424, "The model returned an error.", (502, "upstream_error")),
        (500, "Internal server error.", (500, "upstream_error")),
    ],
)
def test_errors_are_classified(status: int, message: str, expected: tuple[int, str]) -> None:
    error = ADAPTER.error(status, orjson.dumps({"message": message}))
    assert (error.status, error.code) == expected
    assert error.message == message


def test_a_throttled_call_is_a_rate_limit_error() -> None:
    assert ADAPTER.error(429, b'{"message": "slow down"}').type == "rate_limit_error"


def test_an_error_body_that_is_not_json_still_says_something() -> None:
    error = ADAPTER.error(502, b"<html>Bad Gateway</html>")
    assert (error.status, error.message) == (502, "<html>Bad Gateway</html>")
    assert ADAPTER.error(503, b"").message == "HTTP 503"


# -- JSON mode: text beside the forced tool -------------------------------------------------


def test_text_beside_the_json_tool_is_not_part_of_the_answer() -> None:
    completion = answer(
        [
            {"text": "Here is your JSON:"},
            {"toolUse": {"toolUseId": "t", "name": JSON_TOOL, "input": {"answer": "42"}}},
        ],
        "tool_use",
    )
    assert orjson.loads(completion["choices"][0]["message"]["content"]) == {"answer": "42"}


def test_streamed_text_beside_the_json_tool_is_not_part_of_the_answer() -> None:
    request = {"messages": HI, "response_format": {"type": "json_object"}}
    stream = ADAPTER.chat_stream(MODEL, request)
    chunks = stream.feed(
        b"".join(
            [
                event("messageStart", {"role": "assistant"}),
                delta(0, {"text": "Sure, "}),
                delta(0, {"text": "the JSON:"}),
                event("contentBlockStop", {"contentBlockIndex": 0}),
                tool_start(1, "t", JSON_TOOL),
                delta(1, {"toolUse": {"input": '{"answer":"42"}'}}),
                event("contentBlockStop", {"contentBlockIndex": 1}),
                event("messageStop", {"stopReason": "tool_use"}),
                event("metadata", {"usage": STREAM_USAGE}),
            ]
        )
    )
    chunks += stream.finish()
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert orjson.loads(text) == {"answer": "42"}
