"""Microbenchmarks of the hot path's pieces, each also checked for its result.

Under `scripts/test` they run once each (pytest-benchmark disabled): a test of behaviour.
For timings: `.venv/bin/pytest tests/bench/test_hot_path.py --benchmark-enable`, which ends
with a table of each piece's median against its CPU budget (tests/bench/conftest.py). The
budgets are what each piece may cost for the full pipeline to reach half of nginx's
throughput per core (issue 14): reported, never a pass/fail test, since timing depends on the
machine.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import uvloop

from tollway import data_plane_build
from tollway.analytics import wire
from tollway.analytics.redaction import Redactor
from tollway.analytics.sink import RecordSink
from tollway.app import build_router
from tollway.config.compile import compile_config, hash_key
from tollway.config.load import validate_config
from tollway.config.snapshot import ClientKey, SnapshotHolder
from tollway.config.transport import HttpLimits
from tollway.llm.sse import SseFramer
from tollway.policies.context import RequestContext
from tollway.policies.key_auth import KeyAuth
from tollway.policies.record import Record
from tollway.proxy.connection import HttpConnection
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.health import Health
from tollway.proxy.http import Request
from tollway.proxy.server import HttpServer
from tollway.proxy.upstream import Upstreams, request_head

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful '
    b'assistant."},{"role":"user","content":"Summarise the benefits of an AI gateway in two '
    b'sentences."}],"max_tokens":100}'
)
STREAM_BODY = BODY.replace(b'"max_tokens"', b'"stream":true,"max_tokens"')
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n"
    b"User-Agent: OpenAI/Python 1.99.0\r\nAccept: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return None

    def close(self) -> None:
        pass


# Microseconds of CPU each piece may take: together about 32 us a call, half of what nginx
# spends per proxied request on this project's machine (16 us) with the kernel's share
# (~12 us of socket work) left over. See the module's docstring.
BUDGET_US = {
    "test_parse_and_answer_a_request": 4.0,
    "test_request_phase_of_a_chat_call": 4.0,
    "test_key_auth": 0.5,
    "test_sse_framing": 0.3,
    "test_upstream_request_head": 0.5,
    "test_record_done_phase": 0.3,
    "test_record_encoding_per_call": 1.5,
    "test_limits_of_a_call": 4.0,
    "test_cost_of_a_call": 0.5,
    "test_usage_of_an_answer": 1.0,
}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    yield loop
    loop.close()


def _config() -> Any:
    return compile_config(
        validate_config(
            {
                "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
                "models": {"gpt-4o-mini": {"deployments": [{"provider": "p"}]}},
                "keys": [{"name": "bench", "key_sha256": hash_key("sk-bench")}],
            }
        ),
        {},
    )


def test_parse_and_answer_a_request(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Server side of one request: parse, route, answer synchronously (no upstream)."""

    def dispatch(request: Request, conn: HttpConnection) -> None:
        conn.send_json(200, b'{"ok":true}')

    async def make() -> tuple[HttpConnection, FakeTransport]:
        server = HttpServer(dispatch, HttpLimits(), Deadlines())
        conn = HttpConnection(server)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        return conn, transport

    conn, transport = loop.run_until_complete(make())
    benchmark(conn.data_received, REQUEST)
    assert transport.written[-1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.written[-1].endswith(b'{"ok":true}')


def test_request_phase_of_a_chat_call(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Routing, key_auth, body parsing, deployment choice and the upstream request head: all
    that runs before the upstream is called (a streamed call, which stops at its coroutine)."""

    async def make() -> Any:
        return build_router(SnapshotHolder(_config()), Upstreams(Deadlines()), Health())

    router = loop.run_until_complete(make())
    request = Request(
        "POST",
        "/v1/chat/completions",
        b"",
        [
            (b"host", b"x"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer sk-bench"),
        ],
        STREAM_BODY,
        "1.1",
        True,
        b"rid",
    )

    def phase() -> Any:
        work = router.dispatch(request, None)  # type: ignore[arg-type]
        work.close()  # the upstream half is not run here
        return work

    work = benchmark(phase)
    assert asyncio.iscoroutine(work)
    if data_plane_build() == "pure Python":  # a compiled coroutine (setup.py) has no name
        assert work.__qualname__ == "ModelCall._streamed"


def test_key_auth(benchmark: Any) -> None:
    policy = KeyAuth({hashlib.sha256(b"sk-bench").digest(): ClientKey.build("bench", None)})
    request = Request(
        "POST",
        "/",
        b"",
        [(b"host", b"x"), (b"authorization", b"Bearer sk-bench")],
        b"",
        "1.1",
        True,
        b"rid",
    )
    ctx = RequestContext(request, None, None)  # type: ignore[arg-type]
    assert benchmark(policy.on_request, ctx) is None


def test_sse_framing(benchmark: Any) -> None:
    event = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":" word"},"finish_reason":null}]}\n\n'
    )
    framer = SseFramer()
    assert benchmark(framer.feed, event) == event


def test_upstream_request_head(benchmark: Any) -> None:
    fixed = ((b"user-agent", b"tollway/0.1.0"), (b"authorization", b"Bearer sk-upstream"))
    extra = (
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"x-request-id", b"0123456789abcdef0000"),
    )
    head = benchmark(
        request_head, b"POST", b"/v1/chat/completions", b"127.0.0.1:9000", fixed, extra, 200
    )
    assert head.endswith(b"content-length: 200\r\n\r\n")


def _recorded_call() -> RequestContext:
    runtime = _config()
    request = Request(
        "POST",
        "/v1/chat/completions",
        b"",
        [
            (b"host", b"x"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer sk-bench"),
            (b"user-agent", b"OpenAI/Python 1.99.0"),
        ],
        BODY,
        "1.1",
        True,
        b"rid",
    )
    ctx = RequestContext(request, runtime, runtime.routes.exact["/v1/chat/completions"]["POST"])
    ctx.key = next(iter(runtime.keys.values()))
    ctx.model = "gpt-4o-mini"
    ctx.deployment = runtime.models["gpt-4o-mini"].deployments[0]
    ctx.status = 200
    ctx.outcome = "completed"
    ctx.usage = {"prompt_tokens": 21, "completion_tokens": 14, "total_tokens": 35}
    ctx.finished_at = ctx.started_at + 0.01
    return ctx


def test_record_done_phase(benchmark: Any) -> None:
    """The record policy's whole share of a call's done phase: one list append (the flush,
    every 256 calls or 100 ms, is measured below)."""
    sink = RecordSink(batch_size=10**9)
    policy = Record(sink)
    ctx = _recorded_call()
    benchmark(policy.on_done, ctx)
    assert sink.pending and sink.pending[-1] is ctx


def test_record_encoding_per_call(benchmark: Any) -> None:
    """What the flush spends per call: the wire record, and its share of the encoded batch."""
    ctx = _recorded_call()
    redactor = Redactor()

    def one() -> bytes:
        record = wire.from_context(ctx, 1, redactor)
        return wire.encode_records(wire.RecordBatch("p-", 0.0, [record], 1))

    message = benchmark(one)
    [record] = wire.decode(message).records  # type: ignore[union-attr]
    assert record[wire.FIELD["model"]] == "gpt-4o-mini"


LIMITS = {
    "rate_limits": {
        "rules": [
            {
                "scope": "key",
                "requests_per_minute": 10**9,
                "tokens_per_minute": 10**12,
                "concurrent": 10**6,
            },
            {"scope": "model", "requests_per_minute": 10**9},
        ]
    },
    "budgets": {"rules": [{"scope": "key", "amount_usd": "1000000000"}]},
}


def test_limits_of_a_call(benchmark: Any) -> None:
    """rate_limit and budget over one call, in the node's shared-memory table: five counters
    (the key's requests, tokens and concurrency, the model's requests, the key's budget)
    admitted in the body phase with their x-ratelimit-* headers, settled in the done phase."""
    data = {
        "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"gpt-4o-mini": {"deployments": [{"provider": "p"}]}},
        "keys": [{"name": "bench", "key_sha256": hash_key("sk-bench")}],
        **LIMITS,
    }
    runtime = compile_config(validate_config(data), {})
    route = runtime.routes.exact["/v1/chat/completions"]["POST"]
    key = next(iter(runtime.keys.values()))
    request = Request("POST", "/v1/chat/completions", b"", [], BODY, "1.1", True, b"rid")
    usage = {"prompt_tokens": 21, "completion_tokens": 14, "total_tokens": 35}

    def call() -> RequestContext:
        ctx = RequestContext(request, runtime, route)
        ctx.key = key
        ctx.model = "gpt-4o-mini"
        assert route.pipeline.body(ctx) is None
        ctx.upstream_started_at = ctx.started_at
        ctx.usage = usage
        ctx.cost = Decimal("0.0000117")
        route.pipeline.done(ctx)
        return ctx

    ctx = benchmark(call)
    names = dict(ctx.answer_headers)
    assert names[b"x-ratelimit-limit-requests"] == b"1000000000"
    assert b"x-ratelimit-remaining-tokens" in names
    assert ctx.reserved is not None and ctx.reserved["limits"].settled


def test_cost_of_a_call(benchmark: Any) -> None:
    """The catalog price of a call's usage (every call of a priced model, in the done phase)."""
    runtime = _config()
    info = runtime.models["gpt-4o-mini"].deployments[0].info
    assert info is not None
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    assert benchmark(info.cost, usage) == Decimal("0.00075")


def test_usage_of_an_answer(benchmark: Any) -> None:
    """Reading the usage from a whole answer (for limits, budgets, cost and the record)."""
    api = _config().routes.exact["/v1/chat/completions"]["POST"].api
    assert api is not None
    answer = (
        b'{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":'
        b'"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello '
        b'there, this is an answer of a few words."},"finish_reason":"stop"}],"usage":'
        b'{"prompt_tokens":21,"completion_tokens":14,"total_tokens":35}}'
    )
    assert benchmark(api.usage_of, answer) == {
        "prompt_tokens": 21,
        "completion_tokens": 14,
        "total_tokens": 35,
    }
