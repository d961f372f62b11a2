"""A finished call's objects are freed when its answer is sent, by reference counting.

A reference cycle among a call's objects (its context, the request and its body, the attempt,
the exchange) leaves them to Python's cyclic garbage collector. Under load, a collection that
runs while a call is in flight promotes its objects to an older generation, collected rarely:
a worker then holds many finished calls' bodies (50 KB prompts, whole answers) long after they
were answered, and its memory climbs. So every path here must leave no cycle behind.

The gateway runs in this process (its real HTTP server on 127.0.0.1, the shipped mock provider
as its upstream) so that the garbage left by its calls can be looked at; the client speaks raw
HTTP on a socket, so that nothing but the gateway makes objects.
"""

from __future__ import annotations

import asyncio
import collections
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.app import build_router
from tollway.config.compile import compile_config, hash_key
from tollway.config.load import validate_config
from tollway.config.snapshot import SnapshotHolder
from tollway.conversations.sqlite_conversations import SqliteConversationStore
from tollway.conversations.sqlite_store import SqliteResponseStore
from tollway.proxy.balancer import Balancers
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.conversations import Conversations
from tollway.proxy.handlers.health import Health
from tollway.proxy.handlers.model_call import ModelCalls
from tollway.proxy.handlers.responses import StoredResponses
from tollway.proxy.server import HttpServer, bind_socket
from tollway.proxy.upstream import Upstreams

from servers import Process, start_mock

KEY = "sk-lifetime"


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_mock(tmp_path_factory.mktemp("lifetime"))
    yield process
    process.stop()


def _config(upstream: str) -> dict[str, Any]:
    return {
        "providers": {
            "oa": {"base_url": upstream + "/v1"},
            "claude": {"type": "anthropic", "base_url": upstream + "/v1"},
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "oa"}]},
            "broken": {
                "deployments": [{"provider": "oa", "model": "status=500"}],
                "routing": {"retries": 1, "backoff_s": 0},
            },
            "claude": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "text-embedding-3-small": {"deployments": [{"provider": "oa"}]},
        },
        "keys": [{"name": "lifetime", "key_sha256": hash_key(KEY)}],
        "rate_limits": {
            "rules": [{"scope": "key", "requests_per_minute": 10**6, "concurrent": 1000}]
        },
    }


@pytest.fixture
async def gateway(mock: Process, tmp_path: Path) -> AsyncIterator[int]:
    runtime = compile_config(validate_config(_config(mock.url)), {})
    deadlines = Deadlines()
    upstreams = Upstreams(deadlines)
    # Stored responses too: a Responses call the gateway keeps goes through its store.
    kept = SqliteConversationStore(tmp_path / "state.sqlite3")
    stored = StoredResponses(
        ModelCalls(upstreams, Balancers()), SqliteResponseStore(tmp_path / "state.sqlite3"), kept
    )
    router = build_router(
        SnapshotHolder(runtime),
        upstreams,
        Health(),
        responses=stored,
        conversations=Conversations(kept),
    )
    server = HttpServer(router.dispatch, runtime.limits, deadlines)
    sock = bind_socket("127.0.0.1", 0, reuse_port=False)
    port = sock.getsockname()[1]
    await server.start(sock)
    yield port
    await server.drain(2.0)


async def _call(port: int, path: str, body: dict[str, Any], key: str = KEY) -> bytes:
    """One call on a connection of its own; the whole answer."""
    payload = orjson.dumps(body)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), key.encode(), len(payload), payload)
    )
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi " * 2000}]}
CALLS = {
    "chat": ("/v1/chat/completions", CHAT, b"200 OK"),
    "chat-stream": ("/v1/chat/completions", {**CHAT, "stream": True}, b"data: [DONE]"),
    "translated": (
        "/v1/chat/completions",
        {**CHAT, "model": "claude"},
        b'"object":"chat.completion"',
    ),
    "translated-stream": (
        "/v1/chat/completions",
        {**CHAT, "model": "claude", "stream": True},
        b"data: [DONE]",
    ),
    "anthropic-native": (
        "/v1/messages",
        {"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        b'"type":"message"',
    ),
    "responses-stored": (
        "/v1/responses",
        {"model": "claude", "input": "hi"},
        b'"object":"response"',
    ),
    "responses-stored-stream": (
        "/v1/responses",
        {"model": "claude", "input": "hi", "stream": True},
        b"response.completed",
    ),
    # The provider keeps these; the gateway writes whose they are before the answer.
    "responses-kept-upstream": (
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "hi"},
        b'"object":"response"',
    ),
    "responses-kept-upstream-stream": (
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "hi", "stream": True},
        b"response.completed",
    ),
    "embeddings": (
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "hi"},
        b'"embedding"',
    ),
    "upstream-error-after-a-retry": ("/v1/chat/completions", {**CHAT, "model": "broken"}, b"500"),
    "unknown-model": ("/v1/chat/completions", {**CHAT, "model": "nope"}, b"404"),
    "invalid-body": ("/v1/chat/completions", {"model": "gpt-4o-mini"}, b"400"),
    "refused-key": ("/v1/chat/completions", CHAT, b"401"),
}


@pytest.mark.parametrize("kind", list(CALLS))
async def test_a_finished_call_leaves_no_reference_cycle(gateway: int, kind: str) -> None:
    path, body, expected = CALLS[kind]
    key = "sk-wrong" if kind == "refused-key" else KEY
    await _call(gateway, path, body, key)  # the first call of a kind warms caches (made once)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            answer = await _call(gateway, path, body, key)
            assert expected in answer, answer[:300]
        await asyncio.sleep(0.05)  # the connections' close callbacks have run
        gc.collect()
        left = collections.Counter(
            type(o).__qualname__
            for o in gc.garbage
            if getattr(type(o), "__module__", "").startswith("tollway.")
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left, f"{kind}: objects freed only by the cyclic collector: {dict(left)}"
