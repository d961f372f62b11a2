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


# -- Claude Code's newer fields ------------------------------------------------------------


def _request(**fields: object) -> dict[str, object]:
    return {"model": "m", "max_tokens": 100, **fields}


def test_a_mid_conversation_system_message_keeps_its_place() -> None:
    chat = to_chat_request(
        _request(
            system="top",
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "now in Go", "cache_control": {"type": "x"}}
                    ],
                },
                {"role": "assistant", "content": "ok"},
                {"role": "system", "content": "be brief"},
            ],
        )
    )
    assert [m["role"] for m in chat["messages"]] == [
        "system",
        "user",
        "system",
        "assistant",
        "system",
    ]
    assert chat["messages"][2]["content"] == [
        {"type": "text", "text": "now in Go", "cache_control": {"type": "x"}}
    ]
    assert chat["messages"][4] == {"role": "system", "content": "be brief"}


def test_a_system_message_cleared_at_the_next_user_message_is_left_out_once_one_follows() -> None:
    cleared = {"role": "system", "content": "only now", "clear_at": "next_user_message"}
    chat = to_chat_request(
        _request(
            messages=[
                {"role": "user", "content": "a"},
                cleared,
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
                {**cleared, "content": "still shown"},
            ]
        )
    )
    assert [m.get("content") for m in chat["messages"] if m["role"] == "system"] == ["still shown"]


def test_tool_changes_in_a_system_message_are_refused() -> None:
    with pytest.raises(GatewayError, match="tool_removal") as info:
        to_chat_request(
            _request(
                messages=[
                    {"role": "user", "content": "a"},
                    {
                        "role": "system",
                        "content": [{"type": "tool_removal", "tool": {"name": "Bash"}}],
                    },
                ]
            )
        )
    assert info.value.status == 400


def test_other_roles_are_still_refused() -> None:
    with pytest.raises(GatewayError, match=r"messages\.0\.role"):
        to_chat_request(_request(messages=[{"role": "tool", "content": "x"}]))


SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


@pytest.mark.parametrize(
    "fields",
    [
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        {"output_config": {"effort": "low", "format": {"type": "json_schema", "schema": SCHEMA}}},
        {"output_format": {"type": "json_schema", "schema": SCHEMA}},
    ],
    ids=["output_config", "with_effort", "beta_output_format"],
)
def test_structured_output_becomes_a_json_schema_response_format(fields: dict) -> None:
    chat = to_chat_request(_request(messages=[{"role": "user", "content": "q"}], **fields))
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }
    assert "reasoning_effort" not in chat  # effort is the target model's own business


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        (
            {
                "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
                "output_format": {"type": "json_schema", "schema": SCHEMA},
            },
            "output_format",
        ),
    ],
)
def test_a_bad_structured_output_request_is_a_400_naming_the_field(
    fields: dict, param: str
) -> None:
    with pytest.raises(GatewayError) as info:
        to_chat_request(_request(messages=[{"role": "user", "content": "q"}], **fields))
    assert (info.value.status, info.value.param) == (400, param)


def test_reasoning_tokens_are_reported_as_thinking_tokens() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 22},
    }
    message = to_message(
        {"id": "c", "choices": [{"message": {"content": "hi"}}], "usage": usage}, "gpt"
    )
    assert message["usage"]["output_tokens"] == 30
    assert message["usage"]["output_tokens_details"] == {"thinking_tokens": 22}

    events = MessageEvents("gpt")
    out = events.feed({"id": "c", "choices": [{"delta": {"content": "hi"}}]})
    out += events.feed({"id": "c", "choices": [], "usage": usage})
    out += events.finish()
    delta = next(
        orjson.loads(e.split(b"\n")[1][6:])
        for e in out.split(b"\n\n")
        if e.startswith(b"event: message_delta")
    )
    assert delta["usage"]["output_tokens_details"] == {"thinking_tokens": 22}


def test_no_thinking_tokens_when_the_provider_counts_none() -> None:
    message = to_message(
        {
            "id": "c",
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        },
        "m",
    )
    assert "output_tokens_details" not in message["usage"]
