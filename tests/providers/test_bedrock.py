"""What only the Bedrock pairings have: the mock judged by boto3, SigV4 and API keys, reasoning
blocks, cache points and images."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import openai
import pytest

from tollway.testing import mock_openai as wire

from gateways import CLIENT_KEY, UPSTREAM_KEY, keyed_gateway
from servers import Process, get_json

MODEL_ID = "anthropic.claude-sonnet-4-5-20250929-v1:0"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = keyed_gateway(
        workdir,
        {
            "signed": {
                "type": "bedrock",
                "region": "eu-west-1",
                "base_url": mock.url,
                "aws_access_key_id_env": "MOCK_KEY",
                "aws_secret_access_key_env": "MOCK_KEY",
            },
            "keyed": {
                "type": "bedrock",
                "region": "eu-west-1",
                "base_url": mock.url,
                "api_key_env": "MOCK_KEY",
            },
        },
        {"claude": ("signed", MODEL_ID), "claude-keyed": ("keyed", MODEL_ID)},
    )
    yield process
    process.stop()


@pytest.fixture
def oai(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def last(mock: Process) -> dict[str, Any]:
    return get_json(mock.url + "/_mock/requests")[-1]


def test_boto3_accepts_the_mocks_wire_format(mock: Process) -> None:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=mock.url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key=UPSTREAM_KEY,
    )
    messages = [{"role": "user", "content": [{"text": "hello"}]}]
    reply = client.converse(modelId=MODEL_ID, messages=messages)
    assert reply["output"]["message"]["content"][0]["text"] == " ".join(
        wire.reply_words("hello", 50)
    )
    streamed = "".join(
        e["contentBlockDelta"]["delta"].get("text", "")
        for e in client.converse_stream(modelId=MODEL_ID, messages=messages)["stream"]
        if "contentBlockDelta" in e
    )
    assert streamed == reply["output"]["message"]["content"][0]["text"]
    wrong = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=mock.url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="not-the-key",
    )
    with pytest.raises(wrong.exceptions.AccessDeniedException):
        wrong.converse(modelId=MODEL_ID, messages=messages)


@pytest.mark.parametrize("model", ["claude", "claude-keyed"])
def test_signed_and_api_key_requests(oai: openai.OpenAI, mock: Process, model: str) -> None:
    reply = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == " ".join(wire.reply_words("hi", 50))
    seen = last(mock)
    assert seen["path"] == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    auth = seen["headers"]["authorization"]
    if model == "claude":
        assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={UPSTREAM_KEY}/")
        assert "/eu-west-1/bedrock/aws4_request" in auth
    else:
        assert auth == f"Bearer {UPSTREAM_KEY}"


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_blocks_survive_the_round_trip(
    oai: openai.OpenAI, mock: Process, stream: bool
) -> None:
    kwargs: dict[str, Any] = {"model": "claude", "reasoning_effort": "low", "tools": TOOLS}
    question = {"role": "user", "content": "weather?"}
    if stream:
        chunks = list(oai.chat.completions.create(**kwargs, messages=[question], stream=True))
        deltas = [c.choices[0].delta.model_dump(exclude_none=True) for c in chunks if c.choices]
        blocks = [b for d in deltas for b in d.get("thinking_blocks") or []]
        calls = [t for d in deltas for t in d.get("tool_calls") or []]
        message = {
            "role": "assistant",
            "content": None,
            "thinking_blocks": blocks,
            "tool_calls": [
                {
                    "id": calls[0]["id"],
                    "type": "function",
                    "function": {
                        "name": calls[0]["function"]["name"],
                        "arguments": "".join(t["function"].get("arguments", "") for t in calls),
                    },
                }
            ],
        }
    else:
        first = oai.chat.completions.create(**kwargs, messages=[question])
        message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["thinking_blocks"][0]["signature"].startswith("mock-reasoning-")
    assert last(mock)["body"]["additionalModelRequestFields"]["thinking"] == {
        "type": "enabled",
        "budget_tokens": 1024,
    }
    second = oai.chat.completions.create(
        **kwargs,
        messages=[
            question,
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "snow"},
        ],
    )
    assert second.choices[0].message.content == "tool said: snow"


def test_cache_points_images_and_refusals(oai: openai.OpenAI, mock: Process) -> None:
    pixel = base64.b64encode(b"png").decode()
    reply = oai.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": "Shared rules. " * 50,
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                ],
            },
        ],
    )
    body = last(mock)["body"]
    assert body["system"][1] == {"cachePoint": {"type": "default"}}
    assert body["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": pixel}}
    }
    assert reply.usage.prompt_tokens_details.cached_tokens > 100
    for extra, param in (
        ({"tool_choice": "none", "tools": TOOLS}, "tool_choice"),
        ({"frequency_penalty": 1}, "frequency_penalty"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            oai.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "x"}], **extra
            )
        assert info.value.param == param
    with pytest.raises(openai.BadRequestError, match="base64 data URLs"):
        oai.chat.completions.create(
            model="claude",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ],
                }
            ],
        )


def test_anthropic_count_tokens_uses_bedrocks_own_count(gateway: Process, mock: Process) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    short = client.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    ).input_tokens
    long = client.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hi " * 200}]
    ).input_tokens
    assert 0 < short < long
    seen = last(mock)
    assert seen["path"] == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens"
    assert seen["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")
