from __future__ import annotations

import orjson
import pytest

from tollway.errors import GatewayError
from tollway.llm.anthropic_messages import MessageEvents, to_chat_request, to_message


def test_request_maps_tool_results_system_and_thinking() -> None:
    chat = to_chat_request(
        {
            "model": "m",
            "max_tokens": 100,
            "system": "sys",
            "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 5000},
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "boom",
                            "is_error": True,
                        },
                        {"type": "text", "text": "and?"},
                    ],
                },
            ],
        }
    )
    assert chat["messages"][0] == {"role": "system", "content": "sys"}
    assert chat["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}
    assert chat["messages"][4] == {"role": "user", "content": [{"type": "text", "text": "and?"}]}
    assert chat["reasoning_effort"] == "medium"
    assert chat["stream_options"] == {"include_usage": True}


def test_max_tokens_is_required() -> None:
    with pytest.raises(GatewayError, match="max_tokens"):
        to_chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}]})


def test_completion_maps_to_a_message() -> None:
    message = to_message(
        {
            "id": "chatcmpl-1",
            "model": "gpt",
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "content": "ok",
                        "tool_calls": [
                            {"id": "c1", "function": {"name": "f", "arguments": '{"x": 2}'}}
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        },
        "gpt",
    )
    assert message["id"] == "msg_chatcmpl-1"
    assert message["content"] == [
        {"type": "text", "text": "ok"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 2}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 6
    assert message["usage"]["cache_read_input_tokens"] == 4


def test_chunks_become_a_valid_event_sequence() -> None:
    events = MessageEvents("gpt")
    out = b""
    for chunk in [
        {"id": "c", "choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"id": "c", "choices": [{"delta": {"content": "Hi"}}]},
        {
            "id": "c",
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}
                        ]
                    }
                }
            ],
        },
        {
            "id": "c",
            "choices": [
                {
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]:
        out += events.feed(chunk)
    out += events.finish()
    parsed = [
        (e.split(b"\n")[0][7:].decode(), orjson.loads(e.split(b"\n")[1][6:]))
        for e in out.split(b"\n\n")
        if e
    ]
    names = [name for name, _ in parsed]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert parsed[4][1]["content_block"] == {
        "type": "tool_use",
        "id": "t",
        "name": "f",
        "input": {},
    }
    assert parsed[7][1]["delta"]["stop_reason"] == "tool_use"
    assert parsed[7][1]["usage"]["output_tokens"] == 2
