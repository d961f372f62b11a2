"""A Responses request as a canonical chat request: every input item and tool shape that
clients send, and a 400 naming the parameter for what a translated call cannot honour."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.errors import GatewayError
from tollway.llm.responses_request import SIGNATURE_PREFIX, input_items, to_chat_request
from tollway.llm.responses_tools import ClientTool, tool_names


def test_a_string_input_with_instructions_and_settings() -> None:
    chat = to_chat_request(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": "hi",
            "max_output_tokens": 50,
            "temperature": 0.2,
            "parallel_tool_calls": False,
            "reasoning": {"effort": "minimal"},
            "safety_identifier": "user-7",
            "stream": True,
        }
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "temperature": 0.2,
        "parallel_tool_calls": False,
        "user": "user-7",
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_an_agent_turn_becomes_one_assistant_message_with_its_calls() -> None:
    chat = to_chat_request(
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
                {"type": "message", "role": "user", "content": "fix the bug"},
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "look first"}],
                    "encrypted_content": SIGNATURE_PREFIX + "sig-1",
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Reading."}],
                },
                {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
                {
                    "type": "custom_tool_call",
                    "call_id": "c2",
                    "name": "apply_patch",
                    "input": "*** Begin Patch",
                },
                {"type": "function_call_output", "call_id": "c1", "output": "text"},
                {
                    "type": "custom_tool_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "done"}],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "fix the bug"},
        {
            "role": "assistant",
            "content": "Reading.",
            "reasoning_content": "look first",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "look first", "signature": "sig-1"}
            ],
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}},
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "text"},
        {"role": "tool", "tool_call_id": "c2", "content": "done"},
    ]


def test_a_reasoning_item_from_another_gateway_keeps_its_text_only() -> None:
    chat = to_chat_request(
        {
            "input": [
                {"role": "user", "content": "q"},
                {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "q2"},
            ]
        }
    )
    assistant = chat["messages"][1]
    # OpenAI's own encrypted reasoning means nothing to another provider.
    assert assistant == {"role": "assistant", "content": "a"}


def test_user_images_and_files() -> None:
    chat = to_chat_request(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this?"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AA",
                            "detail": "low",
                        },
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,AA",
                            "filename": "a.pdf",
                        },
                    ],
                }
            ]
        }
    )
    assert chat["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"},
        },
    ]


def test_function_custom_and_namespaced_tools() -> None:
    request: dict[str, Any] = {
        "input": "x",
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": True},
            {
                "type": "custom",
                "name": "apply_patch",
                "description": "Edit files.",
                "format": {"type": "grammar", "syntax": "lark", "definition": "start: PATCH"},
            },
            {
                "type": "namespace",
                "name": "mcp_files",
                "tools": [{"type": "function", "name": "read", "description": "Read a file."}],
            },
        ],
        "tool_choice": {"type": "function", "name": "read", "namespace": "mcp_files"},
    }
    chat = to_chat_request(request)
    functions = [t["function"] for t in chat["tools"]]
    assert [f["name"] for f in functions] == ["shell", "apply_patch", "mcp_files__read"]
    assert functions[0]["strict"] is True
    assert functions[1]["parameters"]["required"] == ["input"]
    assert (
        "lark grammar" in functions[1]["description"]
        and "start: PATCH" in functions[1]["description"]
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "mcp_files__read"}}
    assert tool_names(request) == {
        "shell": ClientTool("function", "shell"),
        "apply_patch": ClientTool("custom", "apply_patch"),
        "mcp_files__read": ClientTool("function", "read", "mcp_files"),
    }


def test_allowed_tools_narrow_the_tools_sent() -> None:
    chat = to_chat_request(
        {
            "input": "x",
            "tools": [
                {"type": "function", "name": "a"},
                {"type": "function", "name": "b"},
            ],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "b"}],
            },
        }
    )
    assert [t["function"]["name"] for t in chat["tools"]] == ["b"]
    assert chat["tool_choice"] == "required"


def test_structured_output_and_effort() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    chat = to_chat_request(
        {
            "input": "x",
            "text": {
                "format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
            },
            "reasoning": {"effort": "xhigh"},
        }
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert chat["reasoning_effort"] == "high"
    assert "reasoning_effort" not in to_chat_request(
        {"input": "x", "reasoning": {"effort": "none"}}
    )


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": {}}]},
            "input[0].arguments",
        ),
        ({"input": 7}, "input"),
        ({"instructions": "only this"}, "input"),
        ({"input": "x", "tool_choice": {"type": "mcp"}}, "tool_choice"),
    ],
)
def test_what_cannot_be_translated_is_a_400_naming_it(
    request_body: dict[str, Any], param: str
) -> None:
    with pytest.raises(GatewayError) as info:
        to_chat_request(request_body)
    assert info.value.status == 400
    assert info.value.param == param


def test_input_items_as_a_stored_response_keeps_them() -> None:
    counter = iter(range(100))

    def new_id(prefix: str) -> str:
        return f"{prefix}{next(counter)}"

    assert input_items("hi", new_id) == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
            "status": "completed",
            "id": "msg_0",
        }
    ]
    items = input_items(
        [
            {"role": "assistant", "content": "sure", "id": "msg_given"},
            {"type": "function_call_output", "call_id": "c", "output": "x"},
        ],
        new_id,
    )
    assert items[0]["content"] == [{"type": "output_text", "text": "sure"}]
    assert items[0]["id"] == "msg_given"
    assert items[1]["id"] == "item_1" and "status" not in items[1]
    with pytest.raises(GatewayError) as info:
        input_items([3], new_id)
    assert info.value.param == "input[0]"


def test_codex_s_tool_shapes() -> None:
    """What Codex CLI sends: tools in an additional_tools item, a client-run tool search and
    deferred tools it loads, and built-in tools that are left out."""
    request: dict[str, Any] = {
        "tools": [
            {"type": "web_search", "external_web_access": False},
            {"type": "tool_search", "execution": "client", "parameters": {"type": "object"}},
            {"type": "function", "name": "deferred", "defer_loading": True},
            {"type": "function", "name": "never_loaded", "defer_loading": True},
        ],
        "tool_choice": "auto",
        "input": [
            {
                "type": "additional_tools",
                "role": "developer",
                "tools": [
                    {
                        "type": "namespace",
                        "name": "clock",
                        "tools": [{"type": "function", "name": "sleep"}],
                    },
                    {"type": "custom", "name": "exec"},
                ],
            },
            {"role": "user", "content": "go"},
            {
                "type": "tool_search_call",
                "call_id": "s1",
                "arguments": {"query": "x"},
                "execution": "client",
            },
            {
                "type": "tool_search_output",
                "call_id": "s1",
                "execution": "client",
                "tools": [{"type": "function", "name": "deferred", "description": "Found."}],
            },
        ],
    }
    chat = to_chat_request(request)
    assert [t["function"]["name"] for t in chat["tools"]] == [
        "tool_search",
        "deferred",
        "clock__sleep",
        "exec",
    ]
    assert chat["tool_choice"] == "auto"
    assert chat["messages"][1]["tool_calls"][0]["function"] == {
        "name": "tool_search",
        "arguments": '{"query":"x"}',
    }
    assert chat["messages"][2] == {
        "role": "tool",
        "tool_call_id": "s1",
        "content": "Tools found, now callable:\n- deferred: Found.",
    }
    names = tool_names(request)
    assert names["tool_search"] == ClientTool("tool_search", "tool_search")
    assert names["clock__sleep"] == ClientTool("function", "sleep", "clock")
    # Only built-in tools: none is sent, nor a tool_choice.
    alone = to_chat_request(
        {"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "auto"}
    )
    assert "tools" not in alone and "tool_choice" not in alone
