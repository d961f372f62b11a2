"""The Bedrock adapter: canonical requests to Converse / ConverseStream and back, against
recorded shapes (ConverseStream's binary event stream is built with aws_eventstream.encode,
the same framing AWS sends)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.errors import GatewayError
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


# -- request --------------------------------------------------------------------------------------


def test_the_model_id_is_encoded_in_the_path_and_streams_ask_for_events() -> None:
    plain = ADAPTER.chat_call({"messages": HI}, MODEL, False)
    streamed = ADAPTER.chat_call({"messages": HI}, MODEL, True)
    assert plain.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert streamed.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    assert dict(plain.headers)[b"accept"] == b"application/json"
    assert dict(streamed.headers)[b"accept"] == b"application/vnd.amazon.eventstream"
    # Converse takes no model nor stream flag in the body: the path says both.
    assert set(orjson.loads(streamed.body)) == {"messages"}


def test_system_and_developer_messages_become_system_blocks() -> None:
    body = converse(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Metric units."}]},
                {"role": "user", "content": "Weather?"},
            ]
        }
    )
    assert body["system"] == [{"text": "Be brief."}, {"text": "Metric units."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Weather?"}]}]


def test_a_tool_round_trip_maps_to_tool_use_and_tool_results() -> None:
    body = converse(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [
                        {
                            "id": "tooluse_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "tooluse_b",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "tooluse_a", "content": '{"temp": 21}'},
                {
                    "role": "tool",
                    "tool_call_id": "tooluse_b",
                    "content": [{"type": "text", "text": "rain"}],
                },
                {"role": "user", "content": "And tomorrow?"},
            ],
            "tools": [WEATHER_TOOL],
        }
    )
    user, assistant, results = body["messages"]
    assert user == {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]}
    assert assistant == {
        "role": "assistant",
        "content": [
            {"text": "Checking both."},
            {
                "toolUse": {
                    "toolUseId": "tooluse_a",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            },
            {"toolUse": {"toolUseId": "tooluse_b", "name": "get_weather", "input": {}}},
        ],
    }
    # Consecutive results, and the user's next words, form one user turn (turns alternate).
    assert results == {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "tooluse_a",
                    "content": [{"json": {"temp": 21}}],
                    "status": "success",
                }
            },
            {
                "toolResult": {
                    "toolUseId": "tooluse_b",
                    "content": [{"text": "rain"}],
                    "status": "success",
                }
            },
            {"text": "And tomorrow?"},
        ],
    }


def test_tool_call_arguments_that_are_not_json_are_a_400() -> None:
    error = refusal(
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "a", "function": {"name": "w", "arguments": "{no"}}],
                }
            ]
        }
    )
    assert error.param == "messages[0]"


def test_thinking_blocks_go_back_first_with_their_signature() -> None:
    body = converse(
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "Use the tool.",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "Use the tool.", "signature": "sig=="}
                    ],
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "w", "arguments": "{}"},
                        }
                    ],
                },
            ]
        }
    )
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Use the tool.", "signature": "sig=="}}},
        {"toolUse": {"toolUseId": "t1", "name": "w", "input": {}}},
    ]


def test_cache_control_adds_a_cache_point_after_the_part() -> None:
    body = converse(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {
                            "type": "text",
                            "text": "Long rules",
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert body["system"] == [{"text": "Long rules"}, {"cachePoint": {"type": "default"}}]


def test_base64_images_become_image_blocks() -> None:
    body = converse(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"},
                        },
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {"text": "What is this?"},
        {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
    ]


@pytest.mark.parametrize(
    "url",
    ["https://example.com/cat.png", "data:image/bmp;base64,Qk0=", "data:image/png,rawbytes"],
    ids=["http url", "unsupported format", "not base64"],
)
def test_images_converse_cannot_take_are_refused(url: str) -> None:
    error = refusal(
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ]
        }
    )
    assert error.code == "unsupported_parameter"
    assert "base64 data URLs" in error.message


def test_an_unknown_role_or_content_part_is_refused() -> None:
    assert refusal({"messages": [{"role": "function", "content": "x"}]}).param == "messages[0].role"
    part = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    error = refusal({"messages": [{"role": "user", "content": [part]}]})
    assert error.code == "unsupported_parameter"


def test_sampling_parameters_map_to_inference_config() -> None:
    body = converse(
        {
            "messages": HI,
            "max_tokens": 100,
            "max_completion_tokens": 300,
            "temperature": 0,
            "top_p": 0.9,
            "stop": "END",
            "top_k": 40,
        }
    )
    # max_completion_tokens wins over the older max_tokens; a temperature of 0 is kept.
    assert body["inferenceConfig"] == {
        "maxTokens": 300,
        "temperature": 0,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert body["additionalModelRequestFields"] == {"top_k": 40}


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, budget: int) -> None:
    body = converse({"messages": HI, "reasoning_effort": effort})
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": budget}
    }


def test_an_unknown_reasoning_effort_is_refused() -> None:
    assert refusal({"messages": HI, "reasoning_effort": "max"}).param == "reasoning_effort"


def test_parameters_converse_has_no_use_for_are_dropped() -> None:
    body = converse(
        {
            "messages": HI,
            "seed": 1,
            "user": "u",
            "store": True,
            "metadata": {"a": "b"},
            "service_tier": "auto",
            "parallel_tool_calls": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert body == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 2),
        ("logit_bias", {"1": 1}),
        ("frequency_penalty", 0.5),
        ("presence_penalty", 0.5),
        ("modalities", ["audio"]),
    ],
)
def test_parameters_converse_cannot_honour_are_refused_by_name(param: str, value: Any) -> None:
    error = refusal({"messages": HI, param: value})
    assert (error.code, error.param) == ("unsupported_parameter", param)
    assert "Bedrock" in error.message


def test_tools_map_to_tool_config() -> None:
    body = converse(
        {
            "messages": HI,
            "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}],
        }
    )
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                }
            },
            # A tool without parameters still needs an object schema.
            {
                "toolSpec": {
                    "name": "now",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            },
        ]
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", None),
        ("required", {"any": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"tool": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any] | None) -> None:
    config = converse({"messages": HI, "tools": [WEATHER_TOOL], "tool_choice": choice})[
        "toolConfig"
    ]
    assert config.get("toolChoice") == expected


def test_tool_choice_none_is_refused() -> None:
    error = refusal({"messages": HI, "tools": [WEATHER_TOOL], "tool_choice": "none"})
    assert error.param == "tool_choice"


def test_a_tool_that_is_not_a_function_is_refused() -> None:
    assert refusal({"messages": HI, "tools": [{"type": "web_search"}]}).param == "tools[0]"


def test_json_mode_is_a_forced_tool_with_the_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body = converse(
        {
            "messages": HI,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema},
            },
        }
    )
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_TOOL}}
    [spec] = body["toolConfig"]["tools"]
    assert spec["toolSpec"]["name"] == JSON_TOOL
    assert spec["toolSpec"]["inputSchema"] == {"json": schema}
    plain = converse({"messages": HI, "response_format": {"type": "json_object"}})
    assert plain["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object"}
    }
    assert "toolConfig" not in converse({"messages": HI, "response_format": {"type": "text"}})


def test_json_mode_with_tools_is_refused() -> None:
    error = refusal(
        {"messages": HI, "tools": [WEATHER_TOOL], "response_format": {"type": "json_object"}}
    )
    assert error.param == "response_format"


def test_count_tokens_asks_for_the_converse_input() -> None:
    call = ADAPTER.count_tokens_call(
        {"messages": [{"role": "system", "content": "rules"}, *HI]}, MODEL
    )
    assert call.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens"
    assert orjson.loads(call.body) == {
        "input": {
            "converse": {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "system": [{"text": "rules"}],
            }
        }
    }
    assert ADAPTER.count_tokens_response(b'{"inputTokens": 42}') == 42
