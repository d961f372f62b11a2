"""Exchanges: one request to an upstream and its response, driven by callbacks.

The common case (a pooled connection is free) needs no task and no future: the request is
written at once, and the answer is handed on from the upstream connection's own
`data_received`. That saves the event-loop round trips of waking a task, which cost more than
the rest of a small request. Only opening a new connection runs as a task.

One rule for every exchange, whole or streamed: a pooled connection that turns out to have been
closed by the upstream before any byte of the answer arrived (it was closed while idle, so
nothing was processed) is retried once on a new connection.

- Whole: `on_result(status, headers, body, error)` is called exactly once, unless cancelled.
- Streamed: `on_head(conn)` once the answer's head is in (read the body with
  `conn.next_chunk()`), or `on_result(0, [], b"", error)` if it fails before that.

`cancel()` abandons the exchange (the client went away) and drops the connection.
`fetch()` and `open_stream()` wrap both for coroutines.
"""

from __future__ import annotations

import asyncio

from tollway.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool


class Exchange:
    # Not an ABC: the compiled build makes this an extension type (exchange.pxd), which cannot
    # have ABCMeta; `on_result` is the one method a subclass must give.
    __slots__ = (
        "body",
        "bodyless",
        "cancelled",
        "conn",
        "connecting",
        "head",
        "pool",
        "reused",
        "streaming",
    )

    def __init__(
        self,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        streaming: bool = False,
        bodyless: bool = False,
    ) -> None:
        self.pool = pool
        self.head = head
        self.body = body
        self.streaming = streaming
        # A HEAD request: its answer has no body.
        self.bodyless = bodyless
        self.conn: UpstreamConnection | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.reused = False
        self.cancelled = False

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        """The whole answer, or the error that ended the exchange. Subclasses answer here."""
        raise TypeError(f"{type(self).__name__} does not say what to do with an answer")

    def on_head(self, conn: UpstreamConnection) -> None:
        """A streamed exchange's answer head is in (`conn.status`, `conn.headers`)."""
        raise TypeError(f"{type(self).__name__} is not a streamed exchange")

    def start(self) -> None:
        conn = self.pool.take_idle()
        if conn is None:
            self._connect_then_send()
        else:
            self._send(conn, reused=True)

    def cancel(self) -> None:
        self.cancelled = True
        if self.connecting is not None:
            self.connecting.cancel()
        conn = self.conn
        if conn is not None and not conn.done:
            conn.listener = None
            conn.head_listener = None
            conn.abort()

    def _send(self, conn: UpstreamConnection, reused: bool) -> None:
        self.conn = conn
        self.reused = reused
        try:
            conn.start(self.head, self.body, self.bodyless)
        except UpstreamError as error:
            # Closed by the upstream before anything was sent: a pooled connection is
            # replaced once (as in _on_done); a new one's failure is the exchange's.
            if reused:
                self._connect_then_send()
            else:
                self.on_result(0, [], b"", error)
            return
        conn.whole = not self.streaming
        if not self.streaming:
            conn.limit_total()
        conn.listener = self._on_done
        if self.streaming:
            conn.head_listener = self._on_head

    def _on_head(self) -> None:
        if not self.cancelled:
            conn = self.conn
            assert conn is not None
            self.on_head(conn)

    def _on_done(self, error: UpstreamError | None) -> None:
        if self.cancelled:
            return
        conn = self.conn
        assert conn is not None
        if error is None:
            status, headers = conn.status, conn.headers
            self.on_result(status, headers, conn.take_body(), None)
        elif self.reused and error.kind == "closed" and not conn.got_bytes:
            # A pooled connection the upstream had closed while idle: nothing was processed,
            # so try once more on a new connection.
            self._connect_then_send()
        else:
            self.on_result(0, [], b"", error)

    def _connect_then_send(self) -> None:
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            conn = await self.pool.connect()
        except UpstreamError as error:
            self.connecting = None
            if not self.cancelled:
                self.on_result(0, [], b"", error)
            return
        self.connecting = None
        if self.cancelled:
            conn.abort()
            return
        self._send(conn, reused=False)


class _Awaited(Exchange):
    """An exchange a coroutine awaits: whole (`fetch`) or up to its head (`open_stream`)."""

    __slots__ = ("future",)

    def __init__(
        self, pool: UpstreamPool, head: bytes, body: bytes, streaming: bool, bodyless: bool = False
    ) -> None:
        super().__init__(pool, head, body, streaming, bodyless)
        self.future: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] = (
            asyncio.get_running_loop().create_future()
        )

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result((status, headers, body))

    def on_head(self, conn: UpstreamConnection) -> None:
        if not self.future.done():
            self.future.set_result((conn.status, conn.headers, b""))

    async def wait(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self.start()
        try:
            return await self.future
        except asyncio.CancelledError:
            self.cancel()
            raise


async def fetch(
    pool: UpstreamPool, head: bytes, body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Send a request and read the whole answer."""
    return await _Awaited(pool, head, body, streaming=False).wait()


async def open_stream(
    pool: UpstreamPool, head: bytes, body: bytes, bodyless: bool = False
) -> UpstreamConnection:
    """Send a request and return once the answer's head is in; read the body with
    `next_chunk()` (or `read_all()`), and `abort()` the connection if it is abandoned.
    `bodyless`: the request is HEAD, so its answer has no body."""
    exchange = _Awaited(pool, head, body, streaming=True, bodyless=bodyless)
    await exchange.wait()
    assert exchange.conn is not None
    return exchange.conn
