"""Protocol upgrades passed through to a REST service's target (WebSocket, or any protocol the
two ends agree on): the handshake goes upstream on a connection of its own; if the target
answers 101, client and target are joined by a tunnel that carries bytes both ways as they
come, with backpressure each way (a side whose reader lags stops the other side's reading),
until either end closes or nothing passes for the service's idle timeout.

Any other answer to the handshake goes back to the client as a plain HTTP answer, and the
connection closes (a request that asked to switch protocols is the connection's last).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import httptools

from tollway.config.transport import Origin, UpstreamTimeouts
from tollway.proxy.connection import HttpConnection
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.upstream import MAX_HEAD_BYTES, UpstreamError, closed_before_answering

# The body of an answer that refuses the upgrade is read whole, up to this.
_REFUSAL_BODY_LIMIT = 1024 * 1024


class Handshake:
    """The upstream's answer to the upgrade request: 101, or a refusal with its body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class UpstreamEnd(asyncio.Protocol):
    """The target's side: parses the handshake's answer, then carries raw bytes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[Handshake] = asyncio.get_running_loop().create_future()
        self.tunnel: Tunnel | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.switched = False
        # What the target sent after its 101, before the tunnel was joined.
        self.early = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_upstream(data)
            return
        if self.switched:
            self.early += data
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.early = data[upgrade.args[0] :]
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol", f"upstream sent invalid HTTP: {exc}"))
            return
        if self.switched and not self.answer.done():
            self.answer.set_result(Handshake(101, self.headers, b""))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            raise UpstreamError("protocol", "upstream response head too large")
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            self.headers = []

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > _REFUSAL_BODY_LIMIT:
            raise UpstreamError("protocol", "upstream's refusal of the upgrade is too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status == 101:
            self.switched = True
        elif self.status >= 200 and not self.answer.done():
            self.answer.set_result(Handshake(self.status, self.headers, b"".join(self.body)))

    def _fail(self, error: UpstreamError) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            if self.status >= 200 and self.status != 101:
                # A refusal delimited by the close.
                self.answer.set_result(Handshake(self.status, self.headers, b"".join(self.body)))
            else:
                self.answer.set_exception(
                    UpstreamError("closed", "upstream closed the connection during the upgrade")
                )
        if self.tunnel is not None:
            self.tunnel.upstream_closed()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.upstream_paused()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.upstream_resumed()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def handshake(
    origin: Origin,
    context: ssl.SSLContext | None,
    timeouts: UpstreamTimeouts,
    head: bytes,
) -> tuple[UpstreamEnd, Handshake]:
    """Connect to the target, send the upgrade request and read its answer's head."""
    loop = asyncio.get_running_loop()
    try:
        _, end = await asyncio.wait_for(
            loop.create_connection(UpstreamEnd, origin.host, origin.port, ssl=context),
            timeouts.connect_s,
        )
    except TimeoutError:
        raise UpstreamError(
            "timeout",
            f"connecting to upstream {origin.host}:{origin.port} timed out after "
            f"{timeouts.connect_s:g} s",
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UpstreamError(
            "connect", f"could not connect to upstream {origin.host}:{origin.port}: {reason}"
        ) from None
    transport = end.transport
    if transport is None or transport.is_closing():
        # The upstream took the connection and closed it at once.
        raise closed_before_answering()
    transport.write(head)
    try:
        answer = await asyncio.wait_for(asyncio.shield(end.answer), timeouts.first_byte_s)
    except TimeoutError:
        end.close()
        raise UpstreamError(
            "timeout", f"upstream sent no answer to the upgrade within {timeouts.first_byte_s:g} s"
        ) from None
    except BaseException:
        end.close()
        raise
    return end, answer


class Tunnel:
    """Bytes both ways between a client connection and the target, after a 101."""

    __slots__ = (
        "client",
        "closed",
        "deadline",
        "deadlines",
        "ended_by",
        "idle_s",
        "loop",
        "observer",
        "upstream",
    )

    def __init__(
        self,
        client: HttpConnection,
        upstream: UpstreamEnd,
        idle_s: float,
        deadlines: Deadlines,
        observer: Callable[[bytes], None] | None = None,
    ) -> None:
        self.client = client
        # Sees the target's bytes as they pass (a realtime session's meter); never changes them.
        self.observer = observer
        # Which end closed first: "client", "upstream" or "idle".
        self.ended_by = ""
        self.upstream = upstream
        self.idle_s = idle_s
        self.deadlines = deadlines
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.deadline = self.loop.time() + idle_s
        deadlines.tracked.add(self)
        upstream.tunnel = self

    def join(self, head: bytes) -> None:
        """Send the client the target's 101 (`head`) and start carrying bytes, first those
        either side sent early."""
        early = self.client.switch_protocols(head, _ClientEnd(self))
        if early:
            self.from_client(early)
        early, self.upstream.early = self.upstream.early, b""
        if early:
            self.from_upstream(early)

    # -- bytes ------------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        transport = self.upstream.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.deadline = self.loop.time() + self.idle_s

    def from_upstream(self, data: bytes) -> None:
        if self.observer is not None:
            self.observer(data)
        transport = self.client.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.deadline = self.loop.time() + self.idle_s

    # -- backpressure: a side that cannot write stops the other side's reading --------------

    def client_paused(self) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def client_resumed(self) -> None:
        if self.upstream.transport is not None and not self.upstream.transport.is_closing():
            self.upstream.transport.resume_reading()

    def upstream_paused(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def upstream_resumed(self) -> None:
        if self.client.transport is not None and not self.client.transport.is_closing():
            self.client.transport.resume_reading()

    # -- the end ------------------------------------------------------------------------------

    def client_closed(self) -> None:
        self.ended_by = self.ended_by or "client"
        self.upstream.close()
        self._done()

    def upstream_closed(self) -> None:
        self.ended_by = self.ended_by or "upstream"
        self.upstream.tunnel = None
        self.client.tunnel_closed()
        self._done()

    def on_deadline(self) -> None:
        """Nothing passed either way for the idle timeout."""
        self.ended_by = self.ended_by or "idle"
        self.deadline = 0.0
        self.upstream.close()
        self.client.tunnel_closed()
        self._done()

    def _done(self) -> None:
        self.deadlines.tracked.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)


class _ClientEnd(asyncio.Protocol):
    """The client connection's protocol once it is a tunnel: bytes to the target, the rest
    of the connection's life to its HttpConnection."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        self.tunnel.from_client(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.client.connection_lost(exc)
        self.tunnel.client_closed()

    def pause_writing(self) -> None:
        self.tunnel.client.pause_writing()
        self.tunnel.client_paused()

    def resume_writing(self) -> None:
        self.tunnel.client.resume_writing()
        self.tunnel.client_resumed()
