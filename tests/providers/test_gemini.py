"""What only the Gemini pairings have: the mock judged by Google's own SDK, thought
signatures, images, JSON schemas, thinking, and Vertex AI paths."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from google import genai
from google.genai import types

from tollway.providers.gemini import signature_in_id
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
        {
            "gemini": {
                "type": "gemini",
                "base_url": mock.url + "/v1beta",
                "api_key_env": "MOCK_KEY",
            },
            "vertex": {
                "type": "vertex",
                "api_key_env": "MOCK_KEY",
                "base_url": mock.url + "/v1/projects/demo/locations/us-central1/publishers/google",
            },
        },
        {"gemini": ("gemini", "gemini-2.5-flash"), "vertex": ("vertex", "gemini-2.5-pro")},
    )
    yield process
    process.stop()


@pytest.fixture
def oai(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def last(mock: Process) -> dict[str, Any]:
    return get_json(mock.url + "/_mock/requests")[-1]


# -- the mock, judged by google-genai ---------------------------------------------------------


def test_google_sdk_accepts_the_mocks_wire_format(mock: Process) -> None:
    client = genai.Client(api_key=UPSTREAM_KEY, http_options=types.HttpOptions(base_url=mock.url))
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert reply.text == " ".join(wire.reply_words("hello", 50))
    assert reply.usage_metadata.candidates_token_count == 50
    streamed = "".join(
        c.text or ""
        for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hello")
    )
    assert streamed == reply.text

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"sunny in {city}"

    # The SDK's automatic function calling sends the call back with its thought signature;
    # the mock refuses the turn if the signature is missing, as Gemini does.
    chat = client.chats.create(
        model="gemini-2.5-flash", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert chat.send_message("weather?").text == "tool said: sunny in mock city"


# -- OpenAI clients on Gemini models ------------------------------------------------------------


def test_thought_signature_survives_in_extra_content_and_in_the_id(
    oai: openai.OpenAI, mock: Process
) -> None:
    first = oai.chat.completions.create(
        model="gemini", tools=TOOLS, messages=[{"role": "user", "content": "weather?"}]
    )
    call = first.choices[0].message.tool_calls[0]
    signature = call.model_extra["extra_content"]["google"]["thought_signature"]
    assert base64.b64decode(signature)
    assert signature_in_id(call.id) == signature
    # A client that keeps only id, name and arguments still round-trips.
    plain = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
        ],
    }
    second = oai.chat.completions.create(
        model="gemini",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            plain,
            {"role": "tool", "tool_call_id": call.id, "content": "rain"},
        ],
    )
    assert second.choices[0].message.content == "tool said: rain"
    sent = last(mock)["body"]["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] == signature
    assert sent[2]["parts"][0]["functionResponse"] == {
        "name": "get_weather",
        "response": {"result": "rain"},
    }


def test_images_json_schema_and_generation_config(oai: openai.OpenAI, mock: Process) -> None:
    pixel = base64.b64encode(b"png bytes").decode()
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    reply = oai.chat.completions.create(
        model="gemini",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        messages=[
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.webp"}},
                ],
            },
        ],
    )
    assert json.loads(reply.choices[0].message.content) == {"n": 1}
    body = last(mock)["body"]
    assert body["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "image/png", "data": pixel}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a/cat.webp"}},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "seed": 3,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_is_returned_as_reasoning(oai: openai.OpenAI, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": "gemini",
        "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "hi"}],
    }
    if stream:
        chunks = list(
            oai.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        )
        reasoning = "".join(
            (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
            for c in chunks
            if c.choices
        )
        usage = chunks[-1].usage
    else:
        reply = oai.chat.completions.create(**kwargs)
        reasoning = reply.choices[0].message.model_extra["reasoning_content"]
        usage = reply.usage
    assert reasoning == "Considering what the user asked."
    assert usage.completion_tokens_details.reasoning_tokens == 8
    assert usage.completion_tokens == 50 + 8


def test_named_tool_choice_and_refused_parameters(oai: openai.OpenAI, mock: Process) -> None:
    oai.chat.completions.create(
        model="gemini",
        tools=TOOLS,
        messages=[{"role": "user", "content": "x"}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert last(mock)["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(
            model="gemini", logprobs=True, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.param == "logprobs"


def test_vertex_paths_and_bearer_token(oai: openai.OpenAI, mock: Process) -> None:
    reply = oai.chat.completions.create(
        model="vertex", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == " ".join(wire.reply_words("hi", 50))
    seen = last(mock)
    assert seen["path"] == (
        "/v1/projects/demo/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:generateContent"
    )
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_anthropic_count_tokens_uses_geminis_own_count(gateway: Process, mock: Process) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    short = client.messages.count_tokens(
        model="gemini", messages=[{"role": "user", "content": "hi"}]
    ).input_tokens
    long = client.messages.count_tokens(
        model="gemini", system="Be brief.", messages=[{"role": "user", "content": "hi " * 200}]
    ).input_tokens
    assert 0 < short < long
    seen = last(mock)
    assert seen["path"] == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert seen["body"]["generateContentRequest"]["systemInstruction"] == {
        "parts": [{"text": "Be brief."}]
    }
