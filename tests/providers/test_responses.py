"""The Responses API on models whose provider has none of its own (translated through the
canonical form), judged by the `openai` SDK's Responses client: what only this pairing has,
beyond the shared conformance suite (which runs the Responses client on every provider).

Custom and namespaced tools, structured output, Anthropic's signed thinking carried across
turns as reasoning items, the errors of what cannot be translated, the headers passed on
natively, and the WebSocket upgrade Codex CLI tries first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import websockets

from drivers import WEATHER_TOOL
from gateways import CLIENT_KEY, keyed_gateway
from servers import Process, get_json, requests_seen

FUNCTION = {
    "type": "function",
    "name": WEATHER_TOOL["name"],
    "description": WEATHER_TOOL["description"],
    "parameters": WEATHER_TOOL["schema"],
}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch to the working tree.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch"'},
}


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    provider = {"base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
    process = keyed_gateway(
        workdir,
        {
            "anthropic": {"type": "anthropic", **provider},
            "gemini": {
                "type": "gemini",
                "base_url": mock.url + "/v1beta",
                "api_key_env": "MOCK_KEY",
            },
            "openai": {"type": "openai_compatible", **provider},
            # An OpenAI-format server without a Responses API of its own.
            "local": {"type": "ollama", **provider},
        },
        {
            "claude": ("anthropic", "claude-sonnet-4-5"),
            "claude-midstream": ("anthropic", "claude-sonnet-4-5~stream_error_after=8"),
            "gemini": ("gemini", "gemini-2.5-flash"),
            "gpt": ("openai", "gpt-4o"),
            "llama": ("local", "llama3"),
        },
    )
    yield process
    process.stop()


@pytest.fixture
def client(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def last(mock: Process) -> dict[str, Any]:
    seen: dict[str, Any] = get_json(mock.url + "/_mock/requests")[-1]
    return seen


@pytest.mark.parametrize("model", ["claude", "gemini", "llama"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_custom_tool_is_called_with_plain_text(
    client: openai.OpenAI, mock: Process, model: str, stream: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": model,
        "input": "patch it",
        "tools": [PATCH],
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    }
    if stream:
        with client.responses.stream(**kwargs) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(**kwargs)
    [call] = response.output
    assert call.type == "custom_tool_call"
    assert (call.name, call.input) == ("apply_patch", "mock input")
    # The provider saw a function of one string, told the grammar in its description.
    body = last(mock)["body"]
    text = json.dumps(body)
    assert "lark grammar" in text and "*** Begin Patch" in text
    if model == "llama":
        assert last(mock)["path"] == "/v1/chat/completions"
    # The call's result goes back as a custom tool call output.
    answer = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "patch it"},
            call.model_dump(exclude_none=True),
            {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"},
        ],
        tools=[PATCH],
    )
    assert answer.output_text == "tool said: Done!"


def test_namespaced_tools_come_back_in_their_namespace(
    client: openai.OpenAI, mock: Process
) -> None:
    response = client.responses.create(
        model="claude",
        input="weather?",
        tools=[
            {
                "type": "namespace",
                "name": "mcp_weather",
                "description": "Weather.",
                "tools": [FUNCTION],
            }
        ],  # type: ignore[list-item]
    )
    [call] = response.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.model_dump()["namespace"] == "mcp_weather"
    assert json.loads(call.arguments) == {"city": "mock city", "days": 1}
    assert [t["name"] for t in last(mock)["body"]["tools"]] == ["mcp_weather__get_weather"]


@pytest.mark.parametrize("model", ["claude", "gemini", "llama"])
def test_structured_output(client: openai.OpenAI, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["colour", "count"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=model,
        input="Name a colour.",
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
        },
    )
    assert json.loads(response.output_text) == {"colour": "mock colour", "count": 1}
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_thinking_is_a_reasoning_item_that_carries_its_signature(
    client: openai.OpenAI, mock: Process, stream: bool
) -> None:
    """Codex's loop: reasoning items go back with the next turn, and Anthropic refuses a turn
    after tool use whose signed thinking does not come back intact (the mock does too)."""
    kwargs: dict[str, Any] = {
        "model": "claude",
        "input": "weather?",
        "tools": [FUNCTION],
        "reasoning": {"effort": "low"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
    }
    if stream:
        events = list(client.responses.create(**kwargs, stream=True))
        kinds = [e.type for e in events]
        assert "response.reasoning_text.delta" in kinds
        assert kinds[-1] == "response.completed"
        first = events[-1].response  # type: ignore[union-attr]
    else:
        first = client.responses.create(**kwargs)
    assert last(mock)["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    assert reasoning.encrypted_content and reasoning.content and reasoning.content[0].text  # type: ignore[union-attr]
    assert first.usage is not None and first.usage.output_tokens_details.reasoning_tokens > 0
    second = client.responses.create(
        **{
            **kwargs,
            "input": [
                {"role": "user", "content": "weather?"},
                *(item.model_dump(exclude_none=True) for item in first.output),
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},  # type: ignore[union-attr]
            ],
        }
    )
    assert second.output_text == "tool said: sunny"
    sent = last(mock)["body"]["messages"][1]["content"]
    assert sent[0]["type"] == "thinking" and sent[0]["signature"].startswith("mocksig-")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_what_cannot_be_translated_is_a_400_in_the_api_s_shape(
    client: openai.OpenAI, mock: Process, kwargs: dict[str, Any], param: str
) -> None:
    before = requests_seen(mock)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="hi", **kwargs)
    assert info.value.param == param
    assert isinstance(info.value.body, dict) and info.value.body["message"]
    assert requests_seen(mock) == before  # nothing reached the provider


def test_a_failure_mid_stream_makes_the_sdk_raise(client: openai.OpenAI) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for event in client.responses.create(model="claude-midstream", input="hi", stream=True):
            seen.append(event.type)
    assert "response.output_text.delta" in seen  # it failed midway, after some text
    assert info.value.code == "server_error" and info.value.message


def test_a_provider_error_keeps_the_api_s_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="no-such-model", input="hi")
    assert info.value.code == "model_not_found"


def test_native_calls_pass_the_beta_header_on(client: openai.OpenAI, mock: Process) -> None:
    client.responses.create(
        model="gpt", input="hi", extra_headers={"OpenAI-Beta": "responses=experimental"}
    )
    seen = last(mock)
    assert seen["path"] == "/v1/responses"
    assert seen["headers"]["openai-beta"] == "responses=experimental"


def test_the_websocket_mode_is_answered_426_so_clients_use_http_at_once(
    gateway: Process,
) -> None:
    """Codex CLI opens GET /v1/responses as a WebSocket first and falls back to HTTP at once
    only on 426."""

    async def connect() -> websockets.InvalidStatus:
        url = gateway.url.replace("http://", "ws://") + "/v1/responses"
        try:
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"}
            ):
                raise AssertionError("the upgrade was accepted")
        except websockets.InvalidStatus as refused:
            return refused

    refused = asyncio.run(connect())
    assert refused.response.status_code == 426
    body = json.loads(refused.response.body or b"{}")
    assert body["error"]["code"] == "websocket_not_supported"
