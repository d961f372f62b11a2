"""What only the Cohere pairings have: the mock judged by Cohere's own SDK, embeddings, the
tool plan, and the parameters Cohere names differently or cannot honour."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cohere
import openai
import pytest

from tollway.testing import mock_openai as wire

from gateways import CLIENT_KEY, UPSTREAM_KEY, keyed_gateway
from servers import Process, get_json

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
        {"cohere": {"type": "cohere", "base_url": mock.url + "/v2", "api_key_env": "MOCK_KEY"}},
        {"command": ("cohere", "command-a-03-2025"), "embed": ("cohere", "embed-v4.0")},
    )
    yield process
    process.stop()


@pytest.fixture
def oai(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def last_body(mock: Process) -> dict[str, Any]:
    return get_json(mock.url + "/_mock/requests")[-1]["body"]


def test_cohere_sdk_accepts_the_mocks_wire_format(mock: Process) -> None:
    client = cohere.ClientV2(api_key=UPSTREAM_KEY, base_url=mock.url)
    reply = client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "hello"}])
    assert reply.message.content[0].text == " ".join(wire.reply_words("hello", 50))
    streamed = "".join(
        e.delta.message.content.text
        for e in client.chat_stream(
            model="command-a-03-2025", messages=[{"role": "user", "content": "hello"}]
        )
        if e.type == "content-delta"
    )
    assert streamed == reply.message.content[0].text
    first = client.chat(
        model="command-a-03-2025", tools=TOOLS, messages=[{"role": "user", "content": "weather?"}]
    )
    call = first.message.tool_calls[0]
    second = client.chat(
        model="command-a-03-2025",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_plan": first.message.tool_plan,
                "tool_calls": first.message.tool_calls,
            },
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": [{"type": "document", "document": {"data": "sunny"}}],
            },
        ],
    )
    assert second.message.content[0].text == "tool said: sunny"
    embedded = client.embed(
        model="embed-v4.0", texts=["a"], input_type="search_query", embedding_types=["float"]
    )
    assert embedded.embeddings.float_[0] == pytest.approx(wire.embedding_vector("a", 256))


def test_embeddings_through_the_gateway(oai: openai.OpenAI, mock: Process) -> None:
    # The OpenAI SDK asks for base64: the gateway encodes Cohere's floats itself.
    reply = oai.embeddings.create(model="embed", input=["a", "b"], dimensions=64)
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.data[1].embedding == pytest.approx(wire.embedding_vector("b", 64), abs=1e-6)
    assert reply.usage.prompt_tokens == 2
    body = last_body(mock)
    assert body["texts"] == ["a", "b"] and body["output_dimension"] == 64
    assert body["input_type"] == "search_document"
    raw = oai.embeddings.with_raw_response.create(
        model="embed", input="a", dimensions=4, encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    assert list(struct.unpack("<4f", base64.b64decode(encoded))) == pytest.approx(
        wire.embedding_vector("a", 4), abs=1e-6
    )


def test_parameters_and_tool_plan(oai: openai.OpenAI, mock: Process) -> None:
    reply = oai.chat.completions.create(
        model="command",
        tools=TOOLS,
        top_p=0.5,
        seed=4,
        max_completion_tokens=30,
        tool_choice="required",
        messages=[{"role": "user", "content": "weather?"}],
    )
    message = reply.choices[0].message
    assert message.model_extra["reasoning_content"] == "I will call the tools to answer."
    body = last_body(mock)
    assert (body["p"], body["seed"], body["max_tokens"], body["tool_choice"]) == (
        0.5,
        4,
        30,
        "REQUIRED",
    )


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        (
            {
                "tools": TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            "tool_choice",
        ),
    ],
)
def test_refused_parameters(oai: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(
            model="command", messages=[{"role": "user", "content": "x"}], **extra
        )
    assert info.value.param == param
