"""The OpenAI adapter: the canonical form is OpenAI's own, so the mapping is small, and what it
keeps matters as much as what it changes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tollway.errors import GatewayError
from tollway.providers.base import ProviderStreamError
from tollway.providers.openai import OpenAIAdapter

ADAPTER = OpenAIAdapter()

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def call_body(request: dict[str, Any], model: str = "gpt-4o", stream: bool = False) -> Any:
    call = ADAPTER.chat_call(request, model, stream)
    assert call.path == "/chat/completions"
    assert call.method == b"POST"
    return orjson.loads(call.body)


def data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"data: {text}\n\n".encode()


# -- request --------------------------------------------------------------------------------------


def test_the_deployment_model_replaces_the_public_name() -> None:
    body = call_body({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}, "o4-mini")
    assert body["model"] == "o4-mini"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_system_tools_tool_calls_and_results_go_as_they_are() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    request = {
        "model": "gpt-4o",
        "messages": messages,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
    }
    body = call_body(request)
    assert body["messages"] == messages
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


def test_every_openai_parameter_goes_through_untouched() -> None:
    # Other adapters map, drop or refuse these; OpenAI takes them all (provider quirks, such as
    # Mistral's random_seed, are applied on the pass-through path, not here).
    parameters = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "max_completion_tokens": 120,
        "stop": ["END"],
        "seed": 7,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 3,
        "logit_bias": {"50256": -100},
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "response_format": {"type": "json_object"},
        "reasoning_effort": "high",
        "user": "u-1",
        "metadata": {"k": "v"},
        "store": False,
        "service_tier": "flex",
    }
    body = call_body({"model": "gpt-4o", "messages": [], **parameters})
    assert {k: body[k] for k in parameters} == parameters


def test_images_are_kept_and_cache_hints_dropped() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body = call_body(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?", "cache_control": {"type": "x"}},
                        {**image, "cache_control": {"type": "ephemeral"}},
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [{"type": "text", "text": "What is this?"}, image]


def test_reasoning_extensions_are_not_sent_back_to_openai() -> None:
    # An Anthropic client replaying a turn: the canonical extensions carry Claude's thinking,
    # which OpenAI would refuse as unknown fields.
    assistant = {
        "role": "assistant",
        "content": "It is sunny.",
        "reasoning_content": "The user wants the weather.",
        "thinking_blocks": [{"type": "thinking", "thinking": "...", "signature": "sig"}],
    }
    body = call_body({"messages": [{"role": "user", "content": "hi"}, assistant]})
    assert body["messages"][1] == {"role": "assistant", "content": "It is sunny."}


def test_the_callers_request_is_not_changed() -> None:
    request = {
        "model": "fast",
        "stream": True,
        "stream_options": {"include_usage": False},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {}}]},
            {"role": "assistant", "content": "y", "reasoning_content": "z"},
        ],
    }
    before = copy.deepcopy(request)
    ADAPTER.chat_call(request, "gpt-4o", True)
    ADAPTER.chat_call(request, "gpt-4o", False)
    assert request == before


def test_streams_always_ask_for_usage() -> None:
    request = {"messages": [], "stream_options": {"include_usage": False}}
    body = call_body(request, stream=True)
    assert body["stream"] is True
    # The gateway needs usage whatever the client asked; it decides what the client sees.
    assert body["stream_options"] == {"include_usage": True}


def test_a_call_that_is_not_streamed_carries_no_stream_fields() -> None:
    body = call_body(
        {"messages": [], "stream": True, "stream_options": {"include_usage": True}}, stream=False
    )
    assert "stream" not in body
    assert "stream_options" not in body


# -- response -------------------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1715367049,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "total_tokens": 160,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 32, "audio_tokens": 0},
    },
    "system_fingerprint": "fp_1",
}


def test_a_completion_comes_back_as_it_is() -> None:
    completion = ADAPTER.chat_response(orjson.dumps(COMPLETION), "gpt-4o")
    assert completion == COMPLETION
    message = completion["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
    assert completion["usage"]["prompt_tokens_details"]["cached_tokens"] == 100
    assert completion["usage"]["completion_tokens_details"]["reasoning_tokens"] == 32


@pytest.mark.parametrize("finish", ["stop", "length", "tool_calls", "content_filter"])
def test_finish_reasons_are_kept(finish: str) -> None:
    body = {
        **COMPLETION,
        "choices": [{**COMPLETION["choices"][0], "finish_reason": finish}],
    }
    completion = ADAPTER.chat_response(orjson.dumps(body), "gpt-4o")
    assert completion["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("body", [{"id": "x", "choices": []}, {"id": "x"}, [1, 2]])
def test_a_completion_without_choices_is_a_502(body: Any) -> None:
    with pytest.raises(GatewayError) as info:
        ADAPTER.chat_response(orjson.dumps(body), "gpt-4o")
    assert (info.value.status, info.value.code) == (502, "upstream_protocol")


# -- stream ---------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1715367049,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


USAGE = {
    "prompt_tokens": 50,
    "completion_tokens": 12,
    "total_tokens": 62,
    "prompt_tokens_details": {"cached_tokens": 32},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
RECORDED_CHUNKS = [
    chunk({"role": "assistant", "content": ""}, usage=None),
    chunk({"content": "Checking"}, usage=None),
    chunk({"content": " now."}, usage=None),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        usage=None,
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}, usage=None),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}, usage=None),
    chunk({}, "tool_calls", usage=None),
    {**chunk({}), "choices": [], "usage": USAGE},
]
# With a keep-alive comment, as OpenRouter sends while a model thinks.
RECORDED = (
    b": OPENROUTER PROCESSING\n\n" + b"".join(data(c) for c in RECORDED_CHUNKS) + data("[DONE]")
)


def feed_in_pieces(stream: Any, raw: bytes, size: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(raw), size):
        out.extend(stream.feed(raw[i : i + size]))
    return out


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_recorded_stream_passes_through_chunk_by_chunk(size: int) -> None:
    stream = ADAPTER.chat_stream("gpt-4o")
    chunks = feed_in_pieces(stream, RECORDED, size)
    assert stream.finish() == []
    assert chunks == RECORDED_CHUNKS
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Checking now."
    arguments = "".join(
        t["function"].get("arguments", "") for d in deltas for t in d.get("tool_calls", [])
    )
    assert arguments == '{"city":"Paris"}'
    assert stream.usage == USAGE


def test_usage_is_known_only_once_reported() -> None:
    stream = ADAPTER.chat_stream("gpt-4o")
    stream.feed(b"".join(data(c) for c in RECORDED_CHUNKS[:-1]))
    # `usage: null` on every chunk before the last is not a report.
    assert stream.usage is None
    stream.feed(data(RECORDED_CHUNKS[-1]))
    assert stream.usage == USAGE
    # Nor does a later `usage: null` erase one.
    stream.feed(data(chunk({}, usage=None)) + data("[DONE]"))
    assert stream.usage == USAGE


def test_a_finish_reason_without_done_is_a_complete_stream() -> None:
    # Some OpenAI-compatible servers close the body after the last chunk, without [DONE].
    stream = ADAPTER.chat_stream("m")
    stream.feed(data(chunk({"content": "hi"})) + data(chunk({}, "stop")))
    assert stream.finish() == []


@pytest.mark.parametrize(
    "raw",
    [b"", data(chunk({"role": "assistant", "content": ""})) + data(chunk({"content": "Hel"}))],
    ids=["empty", "cut mid-answer"],
)
def test_a_stream_that_stops_early_is_truncated(raw: bytes) -> None:
    stream = ADAPTER.chat_stream("m")
    stream.feed(raw)
    with pytest.raises(ProviderStreamError) as info:
        stream.finish()
    assert (info.value.error.status, info.value.error.code) == (502, "upstream_stream_truncated")


def test_an_error_in_the_stream_is_raised_with_the_providers_words() -> None:
    stream = ADAPTER.chat_stream("m")
    assert len(stream.feed(data(chunk({"content": "Hel"})))) == 1
    error = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    with pytest.raises(ProviderStreamError) as info:
        stream.feed(data(error))
    assert info.value.error.status == 502
    assert info.value.error.message == "The server had an error while processing your request."
    assert (info.value.error.type, info.value.error.code) == ("server_error", "internal_error")


# -- errors ---------------------------------------------------------------------------------------


def openai_error(message: str, kind: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            openai_error(
                "This model's maximum context length is 128000 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            ),
            (400, "invalid_request_error", "context_length_exceeded", "messages"),
        ),
        (
            404,
            openai_error("The model `gpt-9` does not exist.", "invalid_request_error", None),
            (404, "invalid_request_error", None, None),
        ),
        (
            429,
            openai_error("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
            (429, "requests", "rate_limit_exceeded", None),
        ),
        # A 429 without a code (some compatible servers) is still a rate limit.
        (
            429,
            openai_error("Too many requests", "rate_limit_error", None),
            (429, "rate_limit_error", "rate_limit_exceeded", None),
        ),
        (
            500,
            openai_error("The server had an error.", "server_error", None),
            (500, "server_error", None, None),
        ),
    ],
)
def test_openai_errors_keep_status_message_type_code_and_param(
    status: int, body: bytes, expected: tuple[int, str, str | None, str | None]
) -> None:
    error = ADAPTER.error(status, body)
    assert (error.status, error.type, error.code, error.param) == expected
    assert error.message == orjson.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
        # vLLM and other FastAPI servers answer {"detail": ...}, not OpenAI's error object.
        (b'{"detail":"Not Found"}', '{"detail":"Not Found"}'),
        (b"", "Upstream returned HTTP 503."),
    ],
)
def test_bodies_that_are_not_openai_errors_still_say_something(body: bytes, message: str) -> None:
    error = ADAPTER.error(503, body)
    assert (error.status, error.code, error.message) == (503, "upstream_error", message)


def test_a_long_raw_error_body_is_cut() -> None:
    error = ADAPTER.error(500, b"x" * 10_000)
    assert error.message == "x" * 300
