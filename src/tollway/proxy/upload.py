"""Sending a request upstream while its body still arrives from the client: the head and
then the body as it comes, written by a task of its own with backpressure both ways (the
client's reading paused while the upstream is slow to take it). REST services' forwarded
requests and the model APIs' large uploads go this way; the answer's head is awaited as
usual."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tollway.proxy.http import ClientGone
from tollway.proxy.request_body import BodyError, BodySource, WholeBody
from tollway.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool


async def exchange(
    pool: UpstreamPool, head: bytes, body: BodySource, method: str = "POST"
) -> tuple[UpstreamConnection, asyncio.Task[BaseException | None] | None]:
    """Send the request (a streamed body as it comes, by a task of its own) and return
    once the answer's head is in. A pooled connection the upstream had closed while idle
    is replaced once, when the body can be sent again."""
    conn = pool.take_idle()
    reused = conn is not None
    loop = asyncio.get_running_loop()
    streamed = not isinstance(body, WholeBody)
    while True:
        if conn is None:
            conn = await pool.connect()
        first = b"" if streamed else (await body.next() or b"")
        answer: asyncio.Future[None] = loop.create_future()
        try:
            conn.start(head, first, method == "HEAD")
        except UpstreamError:
            # Closed by the upstream before anything was sent: a pooled connection is
            # replaced once, as below.
            if reused and body.rewind():
                conn, reused = None, False
                continue
            raise
        conn.whole = False
        conn.head_listener = conn.listener = _settle(answer)
        pump = None
        if streamed:
            conn.sending = True
            pump = loop.create_task(_pump(conn, body, answer))
        try:
            await answer
        except UpstreamError as exc:
            if pump is not None:
                pump.cancel()
            if reused and exc.kind == "closed" and not conn.got_bytes and body.rewind():
                conn, reused = None, False
                continue
            raise
        except BaseException:
            if pump is not None:
                pump.cancel()
            conn.abort()
            raise
        return conn, pump


def _settle(answer: asyncio.Future[None]) -> Callable[..., None]:
    """A listener for an upstream connection: the answer's head is in (no argument), or the
    exchange ended first (None, or its error)."""

    def settle(error: BaseException | None = None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(None)

    return settle


def client_failure(pump: asyncio.Task[BaseException | None] | None) -> BaseException | None:
    """Why the client's body broke off, if it did (the pump's result)."""
    if pump is None or not pump.done() or pump.cancelled():
        return None
    return pump.result()


async def _pump(
    conn: UpstreamConnection, body: BodySource, answer: asyncio.Future[None]
) -> BaseException | None:
    """Write a body upstream as it arrives, as fast as the upstream takes it. Returns the
    client's error if its body broke off (the exchange is then aborted)."""
    chunked = body.length is None
    first_byte_s = conn.pool.timeouts.first_byte_s
    try:
        while True:
            data = await body.next()
            if data is None:
                break
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                return None
            transport.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            if not conn.headers_done:
                # The upstream answers once it has the body: its clock starts at the end.
                conn.deadline = conn.loop.time() + first_byte_s
            await conn.drain_writes()
        transport = conn.transport
        if chunked and not conn.closed and transport is not None and not transport.is_closing():
            transport.write(b"0\r\n\r\n")
        conn.sending = False
    except (BodyError, ClientGone) as exc:
        # The client's body broke off: so does the request upstream; the handler answers
        # the client if nothing has gone to it yet.
        conn.abort()
        _settle(answer)(exc)
        return exc
    except UpstreamError:
        # The connection is gone; the answer's side reports why.
        pass
    return None
