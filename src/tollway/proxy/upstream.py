"""The upstream HTTP/1.1 client: keep-alive connection pools, one per origin.

Built on the same parser as the server because the general-purpose clients cost 55-70 us of
CPU per request, three times the rest of the proxy. What it does:

- reuses idle connections (LIFO, so the warmest socket goes first), bounded by `max_idle`;
- enforces connect, first-byte and idle-between-chunks deadlines;
- applies backpressure: while the consumer has `HIGH_WATER` bytes unread, it stops reading
  from the upstream socket, so a slow client never makes the gateway buffer a whole stream.

Errors become `UpstreamError` with a `kind` the handlers map to 502 or 504. Exchanges (one
request and its response, with the retry rule for stale pooled connections) are in
proxy/exchange.py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Literal

import httptools

from tollway.config.snapshot import PoolOwner
from tollway.config.transport import Origin, UpstreamTimeouts
from tollway.proxy.deadlines import Deadlines

HIGH_WATER = 256 * 1024
# An upstream's response head larger than this is refused (the parser would buffer it all).
MAX_HEAD_BYTES = 128 * 1024

ErrorKind = Literal["connect", "timeout", "closed", "protocol"]


class UpstreamError(Exception):
    """The upstream could not be reached or broke off; `kind` decides 502 versus 504."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def status(self) -> int:
        return 504 if self.kind == "timeout" else 502


def closed_before_answering() -> UpstreamError:
    """A connection the upstream closed before the request could be sent on it."""
    return UpstreamError("closed", "upstream closed the connection before answering")


class UpstreamConnection:
    """One keep-alive connection; carries at most one exchange at a time.

    An asyncio protocol by its methods, not by subclassing asyncio.Protocol: the compiled
    build makes it an extension type (upstream.pxd), which cannot derive from a Python class.
    """

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.deadline = 0.0
        # The end of a non-streamed exchange's total time (0: none); deadlines never pass it.
        self.until = 0.0
        self.busy = False
        self.chunks: deque[bytes] = deque()
        # A request body written as it arrives (REST uploads): set while it is being written,
        # so that an answer that ends first does not hand the connection back to its pool.
        self.sending = False
        self.write_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks.clear()
        self.buffered = 0
        self.headers_done = False
        self.done = False
        self.keep_alive = False
        self.got_bytes = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.read_paused = False
        # Set when the body is read whole: then its size is bounded and reading never pauses
        # (backpressure is for streams; a whole body is wanted at once).
        self.whole = False
        # The answer to a HEAD request: a head and no body, whatever its content-length says.
        self.bodyless = False
        # Bytes of the response head so far, then of the body.
        self.head_bytes = 0
        self.received = 0
        # Why a parser callback refused the response (raised out of the parser).
        self.refusal: str | None = None
        # Callback mode (see proxy/exchange.py): `listener` is called once with None when the
        # response is complete, or with the error that ended it; `head_listener`, for streams,
        # once the response head is in (the listener is then dropped: the stream's reader
        # sees what follows through next_chunk).
        self.listener: Callable[[UpstreamError | None], None] | None = None
        self.head_listener: Callable[[], None] | None = None

    # -- exchange -------------------------------------------------------------------------

    def start(self, head: bytes, body: bytes, bodyless: bool = False) -> None:
        """Send a request's head and first bytes. Raises UpstreamError("closed"), with
        nothing sent, when the upstream has closed the connection already: its transport
        closes at once, but connection_lost comes a loop turn later."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise closed_before_answering()
        self._reset()
        self.bodyless = bodyless
        self.busy = True
        self.until = 0.0
        self.deadline = self.loop.time() + self.pool.timeouts.first_byte_s
        try:
            if len(body) < 16384:
                transport.write(head + body)
            else:
                transport.writelines((head, body))
        except RuntimeError:
            # uvloop's handle closed (on a reset) before connection_lost was called.
            self.busy = False
            raise closed_before_answering() from None

    async def _wait(self) -> None:
        waiter = self.loop.create_future()
        self.waiter = waiter
        try:
            await waiter
        finally:
            self.waiter = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read_all(self) -> bytes:
        self.whole = True
        self._resume()
        while not self.done:
            if self.error is not None:
                raise self.error
            await self._wait()
        return self.take_body()

    async def next_chunk(self) -> bytes | None:
        """The bytes received since the last call; None at the end of the body."""
        while True:
            if self.chunks:
                chunks = self.chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                if self.read_paused:
                    self._resume()
                return data
            if self.done:
                self._release()
                return None
            if self.error is not None:
                raise self.error
            await self._wait()

    def _resume(self) -> None:
        """Read from the upstream again after backpressure paused it."""
        if self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()
            if not self.done:
                self._arm(self.pool.timeouts.idle_s)

    def _release(self) -> None:
        self.busy = False
        if self.keep_alive and not self.closed and not self.sending:
            # The last read may have crossed the high-water mark: a pooled connection must
            # be reading, or the next exchange on it never sees its answer.
            self._resume()
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        """Drop the connection (a cancelled or failed exchange cannot be reused)."""
        self.busy = False
        self.deadline = 0.0
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.done:
            self.error = error
        self._wake()
        self.abort()
        self._notify(self.error)

    def _notify(self, error: UpstreamError | None) -> None:
        listener = self.listener
        if listener is not None:
            self.listener = None
            listener(error)

    def take_body(self) -> bytes:
        """The complete body (callback mode); the connection goes back to its pool."""
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self._release()
        return body

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pool.deadlines.tracked.add(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain_writes(self) -> None:
        """Wait until the upstream has taken enough of what was written (an upload's
        backpressure); raises the exchange's error if the connection is gone."""
        while self.write_paused and not self.closed:
            waiter = self.loop.create_future()
            self.write_waiter = waiter
            try:
                await waiter
            finally:
                self.write_waiter = None
        if self.closed:
            raise self.error or UpstreamError("closed", "upstream closed the connection")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()
        self.pool.deadlines.tracked.discard(self)
        self.pool.forget(self)
        if self.busy and not self.done:
            if self.headers_done and self._close_delimited():
                self.done = True
                self.keep_alive = False
                self._wake()
                self._notify(None)
            else:
                where = "before answering" if not self.got_bytes else "mid-response"
                self._fail(UpstreamError("closed", f"upstream closed the connection {where}"))

    def _close_delimited(self) -> bool:
        for name, _ in self.headers:
            if name in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Bytes on an idle connection break the protocol; do not reuse it.
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            message = self.refusal or f"upstream sent invalid HTTP: {exc}"
            self._fail(UpstreamError("protocol", message))
            return
        if not self.headers_done:
            # Still inside the head after this read: llhttp buffers a header that has not
            # ended, so bound what it holds. (A read that completed the head is measured by
            # on_header instead: it may carry body bytes too.)
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self._fail(UpstreamError("protocol", _HEAD_TOO_LARGE))
                return
        self._refresh_deadline()
        if self.done:
            # After feed_data, not inside the parser's callback: the listener may reuse this
            # connection for the next request at once.
            self._notify(None)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            self._refuse(_HEAD_TOO_LARGE)
        self.headers.append((name.lower(), value))

    def _refuse(self, message: str) -> None:
        """Stop the parser from inside a callback; data_received fails the exchange."""
        self.refusal = message
        raise _ResponseRefused(message)

    def on_headers_complete(self) -> None:
        self.head_bytes = 0
        self.received = 0  # from here on it counts body bytes
        self.status = self.parser.get_status_code()
        if not 100 <= self.status <= 599:
            self._refuse(f"upstream sent an invalid status code {self.status}")
        if self.status < 200:
            # 1xx interim response: drop it, the real head follows.
            self.headers = []
            return
        self.headers_done = True
        if self.bodyless:
            # The parser cannot know the request was HEAD and would wait for the body the
            # head announces: the exchange ends here, and the connection is not reused.
            self.done = True
            self.keep_alive = False
            self.deadline = 0.0
        self._wake()
        head_listener = self.head_listener
        if head_listener is not None:
            self.head_listener = None
            self.listener = None
            head_listener()

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        if self.whole and self.received > self.pool.timeouts.max_response_bytes:
            limit = self.pool.timeouts.max_response_bytes
            self._fail(UpstreamError("protocol", f"upstream response larger than {limit} bytes"))
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if (
            self.buffered > HIGH_WATER
            and not self.whole
            and not self.read_paused
            and (self.transport is not None)
        ):
            self.read_paused = True
            self.transport.pause_reading()
        self._wake()

    def _refresh_deadline(self) -> None:
        # While the gateway itself is not reading (backpressure from a slow client), the
        # upstream's silence is not a stall; the client side's send deadline governs then.
        if self.done or self.read_paused:
            self.deadline = 0.0
        else:
            self._arm(self.pool.timeouts.idle_s)

    def _arm(self, seconds: float) -> None:
        deadline = self.loop.time() + seconds
        until = self.until
        self.deadline = until if until and until < deadline else deadline

    def limit_total(self) -> None:
        """Bound this exchange as a whole (a non-streamed call), if its timeouts say so."""
        total = self.pool.timeouts.total_s
        if total is not None:
            self.until = self.loop.time() + total
            if self.until < self.deadline:
                self.deadline = self.until

    def on_message_complete(self) -> None:
        if not self.headers_done:
            return
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()
        self.deadline = 0.0
        self._wake()

    def on_deadline(self) -> None:
        if not self.busy:
            # Idle in the pool too long: close before the upstream does it under us.
            self.abort()
            return
        timeouts = self.pool.timeouts
        if self.until and self.loop.time() >= self.until:
            message = f"upstream did not answer in full within {timeouts.total_s:g} s"
        elif not self.headers_done:
            message = f"upstream sent no response within {timeouts.first_byte_s:g} s"
        else:
            message = f"upstream stalled for more than {timeouts.idle_s:g} s"
        self._fail(UpstreamError("timeout", message))


_HEAD_TOO_LARGE = f"upstream response head larger than {MAX_HEAD_BYTES} bytes"


class _ResponseRefused(Exception):
    """Raised inside a parser callback; `UpstreamConnection.refusal` says why."""


class UpstreamPool:
    """Keep-alive connections to one origin."""

    def __init__(
        self,
        origin: Origin,
        timeouts: UpstreamTimeouts,
        deadlines: Deadlines,
        max_idle: int = 256,
        ca_file: str | None = None,
        verify: bool = True,
    ) -> None:
        self.origin = origin
        self.timeouts = timeouts
        self.deadlines = deadlines
        self.max_idle = max_idle
        self.idle: list[UpstreamConnection] = []
        # Certificates are verified (unless a REST service turns it off); ca_file trusts a
        # private CA instead of the system's.
        self._ssl: ssl.SSLContext | None = None
        if origin.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=ca_file)
            if not verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            _, conn = await asyncio.wait_for(
                # An asyncio protocol by its methods, not its class (see UpstreamConnection).
                loop.create_connection(  # type: ignore[type-var]
                    lambda: UpstreamConnection(self), origin.host, origin.port, ssl=self._ssl
                ),
                self.timeouts.connect_s,
            )
        except TimeoutError:
            raise UpstreamError(
                "timeout",
                f"connecting to upstream {origin.host}:{origin.port} "
                f"timed out after {self.timeouts.connect_s:g} s",
            ) from None
        except OSError as exc:
            verify = getattr(exc, "verify_message", None)
            reason = (
                (verify and f"TLS: {verify}") or exc.strerror or str(exc) or exc.__class__.__name__
            )
            raise UpstreamError(
                "connect", f"could not connect to upstream {origin.host}:{origin.port}: {reason}"
            ) from None
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def take_idle(self) -> UpstreamConnection | None:
        while self.idle:
            conn = self.idle.pop()
            transport = conn.transport
            if not conn.closed and transport is not None and not transport.is_closing():
                return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        if len(self.idle) < self.max_idle:
            conn.deadline = conn.loop.time() + self.timeouts.pool_idle_s
            self.idle.append(conn)
        else:
            conn.abort()

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()


def request_head(
    method: bytes,
    path: bytes,
    host: bytes,
    fixed: tuple[tuple[bytes, bytes], ...],
    extra: tuple[tuple[bytes, bytes], ...],
    content_length: int,
) -> bytes:
    parts = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method, path, host)]
    for name, value in fixed:
        parts.append(b"%s: %s\r\n" % (name, value))
    for name, value in extra:
        parts.append(b"%s: %s\r\n" % (name, value))
    parts.append(b"content-length: %d\r\n\r\n" % content_length)
    return b"".join(parts)


class Upstreams:
    """A worker's pools, one per provider or REST target. A new snapshot with the same origin
    and settings keeps its pool, so a config swap does not drop warm connections."""

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines
        self._pools: dict[str, tuple[object, UpstreamPool]] = {}
        self._by_settings: dict[tuple[Origin, UpstreamTimeouts, int, str | None], UpstreamPool] = {}

    def pool(self, provider: PoolOwner) -> UpstreamPool:
        entry = self._pools.get(provider.name)
        if entry is not None and entry[0] is provider:
            return entry[1]
        settings = (provider.origin, provider.timeouts, provider.max_idle, provider.ca_file)
        pool = self._by_settings.get(settings)
        if pool is None:
            pool = UpstreamPool(
                provider.origin,
                provider.timeouts,
                self.deadlines,
                provider.max_idle,
                provider.ca_file,
            )
            self._by_settings[settings] = pool
        self._pools[provider.name] = (provider, pool)
        return pool

    def close(self) -> None:
        for pool in self._by_settings.values():
            pool.close()
