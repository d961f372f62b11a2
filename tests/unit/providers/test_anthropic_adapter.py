from __future__ import annotations

import orjson
import pytest

from tollway.errors import GatewayError
from tollway.providers.anthropic import AnthropicAdapter, messages_to_anthropic
from tollway.providers.base import ProviderStreamError

ADAPTER = AnthropicAdapter()


def sse(kind: str, payload: dict) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"
    )


# A stream in the documented shape: text, then a tool call whose input arrives in pieces.
RECORDED = b"".join(
    [
        sse(
            "message_start",
            {
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 1},
                }
            },
        ),
        b'event: ping\ndata: {"type": "ping"}\n\n',
        sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me"}}),
        sse(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": " check."}}
        ),
        sse("content_block_stop", {"index": 0}),
        sse(
            "content_block_start",
            {
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_9",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        sse(
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'}},
        ),
        sse(
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": 'ris"}'}},
        ),
        sse("content_block_stop", {"index": 1}),
        sse(
            "message_delta",
            {
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 17},
            },
        ),
        sse("message_stop", {}),
    ]
)


def test_recorded_stream_maps_to_canonical_chunks() -> None:
    stream = ADAPTER.chat_stream("claude-x")
    chunks = []
    for i in range(0, len(RECORDED), 37):  # arbitrary network splits
        chunks.extend(stream.feed(RECORDED[i : i + 37]))
    stream.finish()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Let me check."
    calls = [t for d in deltas for t in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert "".join(t["function"]["arguments"] for t in calls) == '{"city": "Paris"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 25
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 5
    assert chunks[-1]["usage"]["completion_tokens"] == 17
    assert all(c["id"] == "msg_1" for c in chunks)


def test_stream_without_message_stop_is_an_error() -> None:
    stream = ADAPTER.chat_stream("m")
    stream.feed(RECORDED[: RECORDED.index(b"event: message_delta")])
    with pytest.raises(ProviderStreamError) as info:
        stream.finish()
    assert info.value.error.code == "upstream_stream_truncated"


def test_error_event_in_the_stream() -> None:
    stream = ADAPTER.chat_stream("m")
    with pytest.raises(ProviderStreamError) as info:
        stream.feed(sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert (info.value.error.status, info.value.error.code) == (503, "overloaded")


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (429, "rate_limit_error", "slow down", (429, "rate_limit_exceeded")),
        (529, "overloaded_error", "Overloaded", (503, "overloaded")),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            (400, "context_length_exceeded"),
        ),
        (404, "not_found_error", "model: x", (404, "model_not_found")),
    ],
)
def test_errors_are_classified(
    status: int, kind: str, message: str, expected: tuple[int, str]
) -> None:
    error = ADAPTER.error(
        status, orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    )
    assert (error.status, error.code) == expected
    assert error.message == message


def test_non_json_error_body() -> None:
    error = ADAPTER.error(502, b"<html>bad gateway</html>")
    assert error.status == 502 and "bad gateway" in error.message


def test_consecutive_tool_results_become_one_user_turn() -> None:
    system, messages = messages_to_anthropic(
        [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": "weather in two cities?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"c":1}'},
                    },
                    {"id": "b", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "sun"},
            {"role": "tool", "tool_call_id": "b", "content": "rain"},
        ]
    )
    assert system == [{"type": "text", "text": "rules"}]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "tool_use", "id": "a", "name": "w", "input": {"c": 1}},
        {"type": "tool_use", "id": "b", "name": "w", "input": {}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": "sun"},
        {"type": "tool_result", "tool_use_id": "b", "content": "rain"},
    ]


def test_invalid_tool_arguments_are_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        messages_to_anthropic(
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "a", "function": {"name": "w", "arguments": "{not json"}}
                    ],
                }
            ]
        )
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "w"}}, {"type": "tool", "name": "w"}),
    ],
)
def test_tool_choice(choice: object, expected: dict) -> None:
    call = ADAPTER.chat_call(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "w"}}],
        },
        "m",
        False,
    )
    assert orjson.loads(call.body)["tool_choice"] == expected


def test_reasoning_effort_becomes_a_thinking_budget_with_room_to_answer() -> None:
    body = orjson.loads(
        ADAPTER.chat_call(
            {
                "messages": [{"role": "user", "content": "x"}],
                "reasoning_effort": "medium",
                "max_tokens": 1000,
            },
            "m",
            True,
        ).body
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 5096
    assert body["stream"] is True


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(GatewayError, match="'modalities' is not supported"):
        ADAPTER.chat_call({"messages": [], "modalities": ["audio"]}, "m", False)


# -- system messages in the middle of a conversation ---------------------------------------

MID_SYSTEM = [
    {"role": "system", "content": "top"},
    {"role": "user", "content": "q"},
    {"role": "system", "content": [{"type": "text", "text": "now in Go"}]},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "next"},
]


def test_a_later_system_message_is_a_marked_note_where_the_model_has_no_system_role() -> None:
    system, messages = messages_to_anthropic(MID_SYSTEM, "claude-sonnet-4-5")
    assert system == [{"type": "text", "text": "top"}]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "q"},
        {"type": "text", "text": "<system-message>\nnow in Go\n</system-message>"},
    ]


def test_a_later_system_message_stays_a_system_message_on_models_that_take_one() -> None:
    system, messages = messages_to_anthropic(MID_SYSTEM, "claude-opus-4-8")
    assert system == [{"type": "text", "text": "top"}]
    assert [m["role"] for m in messages] == ["user", "system", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "text", "text": "now in Go"}]


def test_tool_results_stay_first_in_their_turn_when_a_system_note_comes_before_them() -> None:
    _, messages = messages_to_anthropic(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "a", "function": {"name": "w", "arguments": "{}"}}],
            },
            {"role": "system", "content": "mind the budget"},
            {"role": "tool", "tool_call_id": "a", "content": "sun"},
        ],
        "claude-sonnet-4-5",
    )
    assert [b["type"] for b in messages[2]["content"]] == ["tool_result", "text"]


# -- JSON mode ----------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}, "where": {"type": "object", "properties": {}}},
    "required": ["colour"],
}


def json_call(model: str, fmt: dict, **extra: object) -> dict:
    request = {"messages": [{"role": "user", "content": "x"}], "response_format": fmt, **extra}
    return orjson.loads(ADAPTER.chat_call(request, model, False).body)


def test_json_schema_uses_structured_outputs_with_closed_objects() -> None:
    body = json_call(
        "claude-sonnet-4-5",
        {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
        tools=[{"type": "function", "function": {"name": "w"}}],
    )
    assert body["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {
                    "colour": {"type": "string"},
                    "where": {"type": "object", "properties": {}, "additionalProperties": False},
                },
                "required": ["colour"],
                "additionalProperties": False,
            },
        }
    }
    assert [t["name"] for t in body["tools"]] == ["w"]  # tools and a format go together
    assert "additionalProperties" not in SCHEMA  # the caller's schema is left as it was


@pytest.mark.parametrize(
    ("model", "fmt"),
    [
        ("claude-3-5-haiku-20241022", {"type": "json_schema", "json_schema": {"schema": SCHEMA}}),
        ("claude-sonnet-4-20250514", {"type": "json_schema", "json_schema": {"schema": SCHEMA}}),
        ("claude-sonnet-4-5", {"type": "json_object"}),
    ],
)
def test_json_mode_rides_on_the_forced_tool_without_structured_outputs(
    model: str, fmt: dict
) -> None:
    body = json_call(model, fmt)
    assert "output_config" not in body
    assert body["tool_choice"] == {"type": "tool", "name": "tollway_json_response"}


def json_tool_reply(*blocks: dict) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "model": "claude-3-5-haiku",
            "stop_reason": "tool_use",
            "content": list(blocks),
            "usage": {"input_tokens": 5, "output_tokens": 7},
        }
    )


def test_text_beside_the_json_tool_is_not_part_of_the_answer() -> None:
    completion = ADAPTER.chat_response(
        json_tool_reply(
            {"type": "text", "text": "Here is the JSON you asked for:"},
            {"type": "tool_use", "id": "t", "name": "tollway_json_response", "input": {"a": 1}},
        ),
        "m",
    )
    choice = completion["choices"][0]
    assert orjson.loads(choice["message"]["content"]) == {"a": 1}
    assert choice["finish_reason"] == "stop"


def json_tool_stream() -> bytes:
    return b"".join(
        [
            sse("message_start", {"message": {"id": "msg_2", "usage": {"input_tokens": 5}}}),
            sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            sse(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": "Sure! Here it is:"}},
            ),
            sse("content_block_stop", {"index": 0}),
            sse(
                "content_block_start",
                {
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "t",
                        "name": "tollway_json_response",
                        "input": {},
                    },
                },
            ),
            sse(
                "content_block_delta",
                {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'}},
            ),
            sse("content_block_stop", {"index": 1}),
            sse(
                "message_delta",
                {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
            ),
            sse("message_stop", {}),
        ]
    )


def test_streamed_text_beside_the_json_tool_is_not_part_of_the_answer() -> None:
    request = {
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"},
    }
    stream = ADAPTER.chat_stream("claude-sonnet-4-5", request)
    chunks = stream.feed(json_tool_stream()) + stream.finish()
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert orjson.loads(text) == {"a": 1}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


# -- usage --------------------------------------------------------------------------------

THINKING_USAGE = {
    "input_tokens": 10,
    "output_tokens": 40,
    "output_tokens_details": {"thinking_tokens": 25},
}


def test_thinking_tokens_are_reasoning_tokens() -> None:
    completion = ADAPTER.chat_response(
        orjson.dumps(
            {
                "id": "msg_1",
                "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "hi"}],
                "usage": THINKING_USAGE,
            }
        ),
        "m",
    )
    assert completion["usage"]["completion_tokens"] == 40
    assert completion["usage"]["completion_tokens_details"] == {"reasoning_tokens": 25}


def test_streamed_thinking_tokens_are_reasoning_tokens() -> None:
    stream = ADAPTER.chat_stream("m")
    chunks = stream.feed(
        sse("message_start", {"message": {"id": "m", "usage": {"input_tokens": 10}}})
        + sse("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": THINKING_USAGE})
        + sse("message_stop", {})
    )
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 25}
