"""The data plane's own HTTP/1.1 server: an asyncio protocol on the llhttp parser (httptools).

Why not an ASGI server: an ASGI layer costs 20-35 us per request, more than the whole rest of
the proxy. This module holds what one listening socket shares (the dispatcher, limits,
deadlines, draining); `proxy.connection` holds what HTTP/1.1 needs per connection.

Timeouts are checked by one sweep a second over all connections instead of a timer per
request: a timer handle costs more than the rest of the bookkeeping, and a second of slack on
a ten-second deadline changes nothing.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tollway.config.transport import HttpLimits
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.http import Request, RequestIds

if TYPE_CHECKING:
    from tollway.proxy.connection import HttpConnection

# The message a stream cut at the drain deadline ends with.
SHUTDOWN_MESSAGE = "The gateway is shutting down and could not finish this stream in time."
# After the drain deadline, how long interrupted streams get to flush their final event.
_INTERRUPT_GRACE_S = 1.0

# A dispatcher answers a request: synchronously (it already called conn.send) by returning
# None, or by returning a coroutine that the connection runs as the request's task.
Dispatch = Callable[[Request, "HttpConnection"], Awaitable[None] | None]


# For a request with a body, given its path: None when its route reads bodies whole, else
# the largest body it takes as the body arrives (sys.maxsize: no limit).
StreamedBodyLimit = Callable[[str], int | None]


class HttpServer:
    """State shared by the connections of one listening socket in one worker."""

    def __init__(
        self,
        dispatch: Dispatch,
        limits: HttpLimits,
        deadlines: Deadlines,
        streamed_body_limit: StreamedBodyLimit | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.limits = limits
        self.deadlines = deadlines
        self.streamed_body_limit = streamed_body_limit
        self.connections: set[HttpConnection] = set()
        self.ids = RequestIds()
        self.draining = False
        self._server: asyncio.base_events.Server | None = None

    async def start(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        # Imported here: the compiled connection module imports this one for HttpServer's
        # type (response_writer.pxd), so this one cannot import it first.
        from tollway.proxy.connection import HttpConnection

        loop = asyncio.get_running_loop()
        self.deadlines.start()
        self._server = await loop.create_server(
            # An asyncio protocol by its methods, not its class (connection.py says why).
            lambda: HttpConnection(self),  # type: ignore[arg-type,return-value]
            sock=sock,
            backlog=2048,
            ssl=tls,
        )

    def in_flight(self) -> int:
        """Requests being answered now (the in-flight gauge reads it once a second)."""
        return sum(1 for conn in self.connections if conn.busy)

    async def drain(self, timeout_s: float) -> int:
        """Stop accepting, let in-flight requests finish, close idle connections.

        Returns how many connections were still open at the deadline and were closed.
        """
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close_when_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = len(self.connections)
        if left:
            # Streams still running end with an error event in their own format, so a client
            # can tell a cut stream from a finished one; everything else is dropped.
            for conn in list(self.connections):
                conn.interrupt(SHUTDOWN_MESSAGE)
            deadline = loop.time() + _INTERRUPT_GRACE_S
            while self.connections and loop.time() < deadline:
                await asyncio.sleep(0.02)
            for conn in list(self.connections):
                conn.abort()
        return left


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening socket; with reuse_port, one per worker process and the kernel balances."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock
