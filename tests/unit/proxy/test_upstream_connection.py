"""The upstream connection's protocol logic, fed bytes directly (no sockets): bodies read whole
versus streamed, backpressure, the head bound, and reuse from the pool."""

from __future__ import annotations

import asyncio

import pytest

from tollway.config.transport import Origin, UpstreamTimeouts
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.exchange import Exchange
from tollway.proxy.upstream import (
    HIGH_WATER,
    MAX_HEAD_BYTES,
    UpstreamConnection,
    UpstreamError,
    UpstreamPool,
)


class FakeTransport:
    def __init__(self) -> None:
        self.paused = False
        self.aborted = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.written.extend(parts)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name: str) -> None:
        return None


class Collected(Exchange):
    __slots__ = ("result",)

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        self.result = (status, body, error)


def _pool() -> UpstreamPool:
    return UpstreamPool(Origin.from_url("http://127.0.0.1:1/v1"), UpstreamTimeouts(), Deadlines())


def _connected(pool: UpstreamPool) -> tuple[UpstreamConnection, FakeTransport]:
    conn = UpstreamConnection(pool)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def _response(body: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)


def _exchange_on(pool: UpstreamPool, conn: UpstreamConnection) -> Collected:
    pool.release(conn)
    exchange = Collected(pool, b"POST / HTTP/1.1\r\n\r\n", b"")
    exchange.start()
    assert exchange.conn is conn, "the pooled connection is taken first"
    return exchange


async def test_a_body_read_whole_is_never_paused() -> None:
    pool = _pool()
    conn, transport = _connected(pool)
    exchange = _exchange_on(pool, conn)
    body = b"x" * (4 * HIGH_WATER)
    data = _response(body)
    for i in range(0, len(data), 65536):
        conn.data_received(data[i : i + 65536])
        assert not transport.paused
    assert exchange.result == (200, body, None)


async def test_read_all_after_a_paused_stream_resumes_reading() -> None:
    pool = _pool()
    conn, transport = _connected(pool)
    conn.start(b"GET / HTTP/1.1\r\n\r\n", b"")
    body = b"y" * (2 * HIGH_WATER)
    data = _response(body)
    conn.data_received(data[: HIGH_WATER + 1024])
    assert transport.paused  # a stream consumer that is not reading pauses the upstream
    reading = asyncio.ensure_future(conn.read_all())
    await asyncio.sleep(0)
    assert not transport.paused
    conn.data_received(data[HIGH_WATER + 1024 :])
    assert await reading == body


async def test_a_connection_goes_back_to_the_pool_reading() -> None:
    pool = _pool()
    conn, transport = _connected(pool)
    conn.start(b"GET / HTTP/1.1\r\n\r\n", b"")
    body = b"z" * (HIGH_WATER + 4096)
    conn.data_received(_response(body))  # the last read crosses the high-water mark
    assert transport.paused
    assert await conn.next_chunk() == body
    assert await conn.next_chunk() is None
    assert pool.idle == [conn]
    assert not transport.paused
    # The next exchange on it gets its answer.
    exchange = _exchange_on(pool, conn)
    conn.data_received(_response(b"small"))
    assert exchange.result == (200, b"small", None)


async def test_head_and_a_large_body_in_one_read_is_not_an_oversized_head() -> None:
    pool = _pool()
    conn, _ = _connected(pool)
    exchange = _exchange_on(pool, conn)
    body = b"b" * (MAX_HEAD_BYTES + 70_000)
    conn.data_received(_response(body))
    assert exchange.result == (200, body, None)


async def test_an_oversized_head_is_refused_whether_or_not_it_ends() -> None:
    pool = _pool()
    # Complete headers, all in one read.
    conn, _ = _connected(pool)
    exchange = _exchange_on(pool, conn)
    headers = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(200))
    conn.data_received(b"HTTP/1.1 200 OK\r\n" + headers + b"content-length: 0\r\n\r\n")
    _, _, error = exchange.result
    assert error is not None and error.kind == "protocol"
    assert "response head larger than" in error.message
    # A header that never ends, over several reads.
    conn, _ = _connected(pool)
    exchange = _exchange_on(pool, conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\nx-endless: ")
    for _ in range(MAX_HEAD_BYTES // 65536 + 1):
        conn.data_received(b"a" * 65536)
    assert exchange.result[2] is not None
    assert "response head larger than" in exchange.result[2].message


@pytest.mark.parametrize("status", [b"999 Odd", b"600 Beyond", b"099 Below"])
async def test_a_status_outside_100_to_599_is_a_protocol_error(status: bytes) -> None:
    pool = _pool()
    conn, transport = _connected(pool)
    exchange = _exchange_on(pool, conn)
    conn.data_received(_response(b"{}", status))
    _, _, error = exchange.result
    assert error is not None and error.kind == "protocol" and error.status == 502
    assert "invalid status code" in error.message
    assert transport.aborted
