"""The official OpenAI SDK, sync and async, through the real gateway to the real mock."""

from __future__ import annotations

import asyncio
import base64
import struct

import openai
import pytest

from tollway.testing import mock_openai as wire

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import Process, get_json

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name three colours."},
]


@pytest.fixture
def client(gateway: Process) -> openai.OpenAI:
    # No SDK retries: each test asserts what one call through the gateway does.
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def aclient(gateway: Process) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def expected_text(words: int = 50) -> str:
    return " ".join(wire.reply_words("Name three colours.", words))


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected_text()
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 50
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 50


def test_chat_round_trips_message_content(client: openai.OpenAI) -> None:
    text = 'Grüße, 世界! "quoted" \\ backslash \u2028 line separator'
    reply = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}]
    )
    assert reply.choices[0].message.content == " ".join(text.split())


def test_max_tokens_gives_length_finish(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_alias_renames_the_upstream_model(client: openai.OpenAI, mock: Process) -> None:
    reply = client.chat.completions.create(model="alias", messages=MESSAGES)
    assert reply.model == "gpt-4o"
    seen = get_json(mock.url + "/_mock/requests")[-1]
    assert seen["model"] == "gpt-4o"
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 50
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_completions_plain_and_streamed(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hello", max_tokens=8
    )
    assert reply.object == "text_completion"
    assert len(reply.choices[0].text.split()) == 8
    assert reply.choices[0].finish_reason == "length"
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hello",
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it.
    default = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 256
    assert default.data[0].embedding == pytest.approx(wire.embedding_vector("a", 256), abs=1e-6)
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float", dimensions=8
    )
    assert floats.data[0].embedding == wire.embedding_vector("a", 8)
    assert floats.usage.prompt_tokens == 1


def test_embedding_base64_wire_bytes(gateway: Process) -> None:
    import httpx

    response = httpx.post(
        gateway.url + "/v1/embeddings",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={
            "model": "text-embedding-3-small",
            "input": "x",
            "encoding_format": "base64",
            "dimensions": 4,
        },
    )
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == pytest.approx(wire.embedding_vector("x", 4))


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert "gpt-4o-mini" in models and "balanced" in models
    # Limits from the catalog, for clients that fit requests to the model.
    assert models["gpt-4o-mini"].model_extra["context_window"] == 128000
    assert models["gpt-4o-mini"].model_extra["max_output_tokens"] == 16384
    assert client.models.retrieve("alias").id == "alias"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_round_robin_across_deployments(
    client: openai.OpenAI, mock: Process, mock_b: Process
) -> None:
    before = (
        get_json(mock.url + "/_mock/stats")["requests"],
        get_json(mock_b.url + "/_mock/stats")["requests"],
    )
    for _ in range(6):
        client.chat.completions.create(model="balanced", messages=MESSAGES)
    after = (
        get_json(mock.url + "/_mock/stats")["requests"],
        get_json(mock_b.url + "/_mock/stats")["requests"],
    )
    assert (after[0] - before[0], after[1] - before[1]) == (3, 3)


async def test_async_client_concurrent_calls_and_stream(aclient: openai.AsyncOpenAI) -> None:
    replies = await asyncio.gather(
        *[
            aclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}]
            )
            for i in range(20)
        ]
    )
    for i, reply in enumerate(replies):
        assert reply.choices[0].message.content == " ".join(wire.reply_words(f"question {i}", 50))
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == expected_text()
    await aclient.close()


# -- errors, as the SDK sees them --------------------------------------------------------------


def test_missing_and_wrong_key(gateway: Process) -> None:
    wrong = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    import httpx

    response = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert "gpt-17" in info.value.message


def test_upstream_rate_limit_passes_through(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="rate-limited", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.code == "rate_limit_exceeded"


def test_upstream_server_error_passes_through(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="broken", messages=MESSAGES)
    assert info.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="overloaded", messages=MESSAGES, stream=True)
    assert info.value.status_code == 503


def test_upstream_unreachable_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="unreachable", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_connect"


def test_upstream_rejecting_gateway_credentials_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="misconfigured", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_auth_failed"


def test_upstream_timeout_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="slow", messages=MESSAGES)
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


def test_upstream_reset_and_truncated_body_are_502(client: openai.OpenAI) -> None:
    for model in ("reset", "cut-body"):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=model, messages=MESSAGES)
        assert info.value.status_code == 502, model
        assert info.value.code == "upstream_closed", model


def test_stream_cut_mid_way_raises_in_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="cut-stream", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    # Three whole events went out before the cut; the half event was never forwarded.
    assert len(received) == 3
    assert "stream failed" in info.value.message
    assert info.value.body["code"] == "upstream_stream_interrupted"


def test_stream_stalled_upstream_raises_in_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="stall-stream", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.body["code"] == "upstream_timeout"


def test_gateway_keeps_serving_after_failures(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content == expected_text()


def test_a_key_sees_and_uses_only_its_models(gateway: Process) -> None:
    import anthropic

    from gateways import LIMITED_KEY

    limited = openai.OpenAI(base_url=gateway.url + "/v1", api_key=LIMITED_KEY, max_retries=0)
    assert sorted(m.id for m in limited.models.list()) == ["gpt-4o-mini", "text-embedding-3-small"]
    assert limited.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert limited.embeddings.create(model="text-embedding-3-small", input="x").data
    # A model the key may not use looks exactly like one that does not exist.
    for model in ("alias", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as info:
            limited.chat.completions.create(model=model, messages=MESSAGES)
        assert info.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            limited.models.retrieve(model)
    with pytest.raises(anthropic.NotFoundError):
        anthropic.Anthropic(
            base_url=gateway.url, api_key=LIMITED_KEY, max_retries=0
        ).messages.create(model="alias", max_tokens=5, messages=MESSAGES)


def test_responses_api_passes_through(client: openai.OpenAI, mock: Process) -> None:
    reply = client.responses.create(
        model="gpt-4o-mini", input="Name three colours.", instructions="Be brief."
    )
    assert reply.output_text == expected_text()
    assert reply.usage.output_tokens == 50
    assert get_json(mock.url + "/_mock/requests")[-1]["path"] == "/v1/responses"
    stream = client.responses.create(model="gpt-4o-mini", input="Name three colours.", stream=True)
    events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == expected_text()
    assert events[-1].response.output_text == expected_text()


def test_responses_function_calls_round_trip(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    first = client.responses.create(model="gpt-4o-mini", input="weather?", tools=tools)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, call.arguments) == ("get_weather", '{"city":"mock city"}')
    second = client.responses.create(
        model="gpt-4o-mini",
        tools=tools,
        input=[
            {"role": "user", "content": "weather?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "tool said: sunny"


def test_responses_stream_failure_is_an_error_event_the_sdk_raises_on(
    client: openai.OpenAI,
) -> None:
    """The gateway's own `error` event (the upstream broke off) carries an `error` object
    beside the Responses API's fields, which makes the SDK raise instead of ending quietly."""
    events = []
    with pytest.raises(openai.APIError) as info:
        for event in client.responses.create(model="cut-stream", input="x", stream=True):
            events.append(event.type)
    assert events and events[0] == "response.created"
    assert info.value.code == "upstream_stream_interrupted"


def test_an_oversized_upstream_response_is_refused_but_streams_flow(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="too-big", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_protocol"
    assert "larger than 2048 bytes" in info.value.message
    # Streams are bounded by backpressure instead, not by size.
    stream = client.chat.completions.create(model="too-big", messages=MESSAGES, stream=True)
    assert (
        len("".join(c.choices[0].delta.content or "" for c in stream if c.choices).split()) == 500
    )
