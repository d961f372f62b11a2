"""A pooled connection the upstream has just closed: its transport is closed at once, but
the protocol hears of it (connection_lost) a loop turn later. A request that takes it in that
turn must go out on a new connection, never fail (it failed as a 500 under load: uvloop's
write on a closed transport raises RuntimeError). Real sockets on 127.0.0.1, under uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvloop

from tollway.config.transport import Origin, UpstreamTimeouts
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.exchange import fetch
from tollway.proxy.request_body import WholeBody
from tollway.proxy.upload import exchange
from tollway.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HEAD = b"GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


@asynccontextmanager
async def upstream() -> AsyncIterator[tuple[str, list[int]]]:
    """An upstream answering every request on a connection; the list counts connections."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", accepted


def _pool(url: str) -> UpstreamPool:
    return UpstreamPool(Origin.from_url(url), UpstreamTimeouts(), Deadlines())


async def _pool_with_a_closed_idle_connection(url: str) -> tuple[UpstreamPool, UpstreamConnection]:
    pool = _pool(url)
    assert await fetch(pool, HEAD, b"") == (200, [(b"content-length", b"2")], b"ok")
    assert len(pool.idle) == 1
    conn = pool.idle[0]
    assert conn.transport is not None
    conn.transport.abort()  # as uvloop does on a reset: connection_lost is yet to come
    assert not conn.closed and conn.transport.is_closing()
    return pool, conn


def test_starting_on_a_closed_transport_is_an_upstream_error_with_nothing_sent() -> None:
    uvloop.run(_starting_on_a_closed_transport_is_an_upstream_error_with_nothing_sent())


async def _starting_on_a_closed_transport_is_an_upstream_error_with_nothing_sent() -> None:
    async with upstream() as (url, _):
        _, conn = await _pool_with_a_closed_idle_connection(url)
        with pytest.raises(UpstreamError) as raised:
            conn.start(HEAD, b"")
        assert raised.value.kind == "closed"
        assert not conn.busy


def test_a_fetch_passes_over_an_idle_connection_being_closed() -> None:
    uvloop.run(_a_fetch_passes_over_an_idle_connection_being_closed())


async def _a_fetch_passes_over_an_idle_connection_being_closed() -> None:
    async with upstream() as (url, accepted):
        pool, closed = await _pool_with_a_closed_idle_connection(url)
        assert await fetch(pool, HEAD, b"") == (200, [(b"content-length", b"2")], b"ok")
        assert len(accepted) == 2
        assert closed not in pool.idle


def test_a_forwarded_request_passes_over_an_idle_connection_being_closed() -> None:
    uvloop.run(_a_forwarded_request_passes_over_an_idle_connection_being_closed())


async def _a_forwarded_request_passes_over_an_idle_connection_being_closed() -> None:
    async with upstream() as (url, accepted):
        pool, closed = await _pool_with_a_closed_idle_connection(url)
        conn, pump = await exchange(pool, HEAD, WholeBody(b""), "GET")
        assert pump is None
        assert conn is not closed and conn.status == 200
        assert await conn.read_all() == b"ok"
        assert len(accepted) == 2


def test_a_connection_closed_between_connect_and_send_fails_as_closed() -> None:
    uvloop.run(_a_connection_closed_between_connect_and_send_fails_as_closed())


async def _a_connection_closed_between_connect_and_send_fails_as_closed() -> None:
    """A new connection the upstream closes at once (no pooled one to fall back on): a
    502-kind error the handler can retry elsewhere, never an internal error."""
    async with upstream() as (url, _):
        pool = _LosingPool(Origin.from_url(url), UpstreamTimeouts(), Deadlines())
        with pytest.raises(UpstreamError) as raised:
            await fetch(pool, HEAD, b"")
        assert raised.value.kind == "closed"
        with pytest.raises(UpstreamError) as raised:
            await exchange(pool, HEAD, WholeBody(b""), "GET")
        assert raised.value.kind == "closed"


class _LosingPool(UpstreamPool):
    """A pool whose new connections the upstream has closed by the time they are used."""

    async def connect(self) -> UpstreamConnection:
        conn = await super().connect()
        assert conn.transport is not None
        conn.transport.abort()
        return conn


class _ClosedHandle:
    """A transport whose handle is closed while it does not say it is closing: uvloop's
    state after a reset, until connection_lost is called."""

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport>; the handler is closed")

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.write(b"".join(parts))

    def get_extra_info(self, name: str) -> None:
        return None


@pytest.mark.parametrize("size", [0, 100_000])
def test_a_write_refused_by_a_closed_handle_is_an_upstream_error(size: int) -> None:
    async def run() -> None:
        pool = _pool("http://127.0.0.1:1/v1")
        conn = UpstreamConnection(pool)
        conn.connection_made(_ClosedHandle())  # type: ignore[arg-type]
        with pytest.raises(UpstreamError) as raised:
            conn.start(HEAD, b"x" * size)
        assert raised.value.kind == "closed"
        assert not conn.busy

    uvloop.run(run())
