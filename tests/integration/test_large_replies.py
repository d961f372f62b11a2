"""Large non-streamed replies arrive whole, on the pass-through and the translated paths, and
leave the upstream connection fit for reuse. A 3 MB embeddings answer is ordinary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from gateways import CLIENT_KEY, keyed_gateway
from servers import Process, get_json

MB = 1_000_000
# The mock's generated words average a little under 6.5 bytes each in a JSON string.
BYTES_PER_WORD = 6.4
# An embedding of this width, as the mock's JSON floats, takes roughly this many bytes.
DIMS = 3072
BYTES_PER_VECTOR = 3072 * 9
SIZES_MB = (1, 10, 60)
# Reply lengths in words the pool and head tests ask for, besides the sizes above.
OTHER_LENGTHS = (30_000, 45_000, 60_000, 80_000)


def _words(size_mb: int) -> int:
    return int(size_mb * MB / BYTES_PER_WORD)


def _chat_models() -> dict[str, tuple[str, str]]:
    """Public names for fixed reply lengths (the mock reads the length from the model name
    the gateway sends upstream)."""
    lengths = [_words(size) for size in SIZES_MB] + list(OTHER_LENGTHS)
    models = {}
    for words in lengths:
        models[f"chat-plain-{words}"] = ("plain", f"gpt-4o~words={words}")
        models[f"chat-translated-{words}"] = ("claude", f"claude-sonnet-4-5~words={words}")
    models["chat-plain-echo"] = ("plain", "gpt-4o~echo")
    return models


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    openai_format = {
        "base_url": mock.url + "/v1",
        "api_key_env": "MOCK_KEY",
        # Short deadlines, so that a reply that never arrives fails the test quickly.
        "timeouts": {"first_byte_s": 20, "idle_s": 20},
    }
    process = keyed_gateway(
        workdir,
        {
            "plain": openai_format,
            "claude": {**openai_format, "type": "anthropic"},
            "cohere": {**openai_format, "type": "cohere", "base_url": mock.url + "/v2"},
        },
        {
            **_chat_models(),
            "embed-plain": ("plain", "text-embedding-3-large"),
            "embed-translated": ("cohere", "embed-v4.0"),
        },
    )
    yield process
    process.stop()


def _post(gateway: Process, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        gateway.url + path,
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
        timeout=60,
    )


@pytest.mark.parametrize("size_mb", SIZES_MB)
@pytest.mark.parametrize("path", ["plain", "translated"])
def test_a_large_chat_reply_arrives_whole(gateway: Process, path: str, size_mb: int) -> None:
    words = _words(size_mb)
    response = _post(
        gateway,
        "/v1/chat/completions",
        {
            "model": f"chat-{path}-{words}",
            "messages": [{"role": "user", "content": "hi"}],
            # Anthropic's format needs a cap; the gateway's default one would cut the reply.
            "max_tokens": words,
        },
    )
    assert response.status_code == 200, response.text[:300]
    assert len(response.content) >= size_mb * MB * 0.9
    completion = orjson.loads(response.content)
    assert len(completion["choices"][0]["message"]["content"].split()) == words
    assert completion["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("size_mb", SIZES_MB)
@pytest.mark.parametrize("model", ["embed-plain", "embed-translated"])
def test_a_large_embeddings_reply_arrives_whole(gateway: Process, model: str, size_mb: int) -> None:
    inputs = max(1, size_mb * MB // BYTES_PER_VECTOR)
    response = _post(
        gateway,
        "/v1/embeddings",
        {"model": model, "input": [f"text {i}" for i in range(inputs)], "dimensions": DIMS},
    )
    assert response.status_code == 200, response.text[:300]
    assert len(response.content) >= size_mb * MB * 0.8
    data = orjson.loads(response.content)["data"]
    assert [item["index"] for item in data] == list(range(inputs))
    assert all(len(item["embedding"]) == DIMS for item in data)


def test_the_official_sdk_reads_a_3_mb_embeddings_answer(gateway: Process) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    result = client.embeddings.create(
        model="embed-plain", input=[f"text {i}" for i in range(100)], dimensions=DIMS
    )
    assert len(result.data) == 100
    assert all(len(item.embedding) == DIMS for item in result.data)


def test_a_pooled_connection_serves_the_next_call_after_a_large_reply(
    gateway: Process, mock: Process
) -> None:
    """A reply that crosses the read high-water mark on its last read used to leave its
    connection paused in the pool: the next call on it waited for its first-byte timeout."""
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10
    )
    messages = [{"role": "user", "content": "hi"}]
    for words in (45_000, 60_000, 80_000):
        big = client.chat.completions.create(model=f"chat-plain-{words}", messages=messages)
        assert len((big.choices[0].message.content or "").split()) == words
        served_before = get_json(mock.url + "/_mock/stats")["requests"]
        small = client.chat.completions.create(model="chat-plain-echo", messages=messages)
        assert small.choices[0].message.content == "hi"
        assert get_json(mock.url + "/_mock/stats")["requests"] == served_before + 1


def test_replies_around_the_head_limit_never_fail_as_an_oversized_head(gateway: Process) -> None:
    """A first read holding the head and more than 128 KiB of body is not a large head."""
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    for _ in range(20):
        reply = client.chat.completions.create(model="chat-plain-30000", messages=messages)
        assert len((reply.choices[0].message.content or "").split()) == 30_000
