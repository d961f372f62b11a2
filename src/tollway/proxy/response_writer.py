"""The writing side of a client connection: response heads, whole bodies, streams, the
switch to another protocol, backpressure and the send deadline.

`HttpConnection` (proxy/connection.py) is the reading side (parse, queue, dispatch) and
inherits this; the two are one object, split along the seam between reading and writing.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from tollway.errors import error_body
from tollway.proxy.http import STATUS_LINES, Cancellable, ClientGone, Refusal, Request, status_line

if TYPE_CHECKING:
    from tollway.proxy.server import HttpServer

log = logging.getLogger("tollway.server")

_JSON = b"application/json"
# Bodies at least this large are written beside their head, not copied into one buffer.
_COPY_LIMIT = 16384


class ResponseWriter:
    # Not an asyncio.Protocol subclass: the compiled build makes this an extension type
    # (response_writer.pxd), which cannot derive from a Python class; the event loop needs
    # only the methods.
    __slots__ = (
        "_active",
        "_drain_waiter",
        "_interrupt",
        "_stall",
        "_stream_http10",
        "_streaming",
        "_task",
        "_write_paused",
    )

    # The reading side's state that writing needs (set by HttpConnection).
    _server: HttpServer
    _loop: asyncio.AbstractEventLoop
    _pending: deque[Request | Refusal]
    _closed: bool
    transport: asyncio.Transport | None

    def _init_writer(self) -> None:
        # The request being answered, and the work answering it: its task, or an attached
        # callback exchange.
        self._active: Request | None = None
        self._task: Cancellable | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._stream_http10 = False
        self._streaming = False
        # Writes a stream's final error event when the stream is cut (drain deadline).
        self._interrupt: Callable[[str], bytes] | None = None
        # Watches the send deadline while the client is not reading what was written.
        self._stall: _WriteStall | None = None

    @abstractmethod
    def _keep_alive(self) -> bool:
        """Whether the connection stays open after the active request's response."""

    @abstractmethod
    def _finish_response(self, keep_alive: bool) -> None:
        """The active request's response is written: go on to the next one, or close."""

    @abstractmethod
    def _close(self) -> None: ...

    # -- backpressure ----------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._write_paused = True
        self._watch_sending()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall is not None:
            self._server.deadlines.tracked.discard(self._stall)
            self._stall = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _writer_lost(self) -> None:
        """connection_lost, for the writing side."""
        if self._stall is not None:
            self._server.deadlines.tracked.discard(self._stall)
            self._stall = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ClientGone("client closed the connection"))

    # -- writing responses -------------------------------------------------------------

    def _head(
        self, status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> list[bytes]:
        request = self._active
        parts = [STATUS_LINES.get(status) or status_line(status)]
        for name, value in headers:
            parts.append(b"%s: %s\r\n" % (name, value))
        if request is not None:
            parts.append(b"x-request-id: %s\r\n" % request.request_id)
            if request.http_version == "1.0" and keep_alive:
                parts.append(b"connection: keep-alive\r\n")
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        return parts

    def send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        """Write a complete response and move on to the next request."""
        if self._closed or self.transport is None:
            return
        keep_alive = self._keep_alive()
        parts = self._head(status, headers, keep_alive)
        parts.append(b"content-length: %d\r\n\r\n" % len(body))
        request = self._active
        if not body or (request is not None and request.method == "HEAD"):
            self.transport.write(b"".join(parts))
        elif len(body) < _COPY_LIMIT:
            parts.append(body)
            self.transport.write(b"".join(parts))
        else:
            self.transport.writelines((b"".join(parts), body))
        self._finish_response(keep_alive)

    def send_json(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        extra = [(b"content-type", _JSON)]
        if headers:
            extra.extend(headers)
        self.send(status, extra, body)

    def send_error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.send_json(
            status, error_body(status, message, code=code, param=param, type=type), headers
        )

    def start_stream(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        on_interrupt: Callable[[str], bytes] | None = None,
    ) -> None:
        """Send a response head for a body of unknown length (chunked, or close-delimited
        for an HTTP/1.0 client). `on_interrupt(message)` gives the final event to write if
        the gateway must cut the stream (shutdown), in the stream's own format."""
        if self._closed or self.transport is None:
            raise ClientGone("client closed the connection")
        request = self._active
        self._streaming = True
        self._interrupt = on_interrupt
        if request is not None and request.http_version == "1.0":
            self._stream_http10 = True
            request.keep_alive = False
            parts = self._head(status, headers, False)
        else:
            parts = self._head(status, headers, self._keep_alive())
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        self.transport.write(b"".join(parts))

    def write_chunk(self, data: bytes) -> None:
        if self._closed or self.transport is None:
            raise ClientGone("client closed the connection")
        if not data:
            return
        if self._stream_http10:
            self.transport.write(data)
        else:
            self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written (backpressure)."""
        if self._closed:
            raise ClientGone("client closed the connection")
        if not self._write_paused:
            return
        # The send deadline is the stall watch's (armed by pause_writing): past it the
        # connection is aborted, and connection_lost fails this waiter.
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def end_stream(self) -> None:
        if self._closed or self.transport is None:
            return
        if self._stream_http10:
            self._stream_http10 = False
            self._finish_response(False)
            return
        keep_alive = self._keep_alive()
        self.transport.write(b"0\r\n\r\n")
        self._finish_response(keep_alive)

    def _write_error_and_close(self, refusal: Refusal) -> None:
        """Answer a request the parser refused, and close."""
        if self.transport is not None and not self._closed:
            body = error_body(refusal.status, refusal.message, code=refusal.code)
            self.transport.write(
                b"%scontent-type: application/json\r\ncontent-length: %d\r\n"
                b"x-request-id: %s\r\nconnection: close\r\n\r\n%s"
                % (STATUS_LINES[refusal.status], len(body), refusal.request_id, body)
            )
        self._close()

    def interrupt(self, message: str) -> None:
        """Cut the connection: a stream in progress first ends with its error event."""
        if self._closed or self.transport is None:
            return
        if not (self._streaming and self._interrupt is not None):
            self.abort()
            return
        event = self._interrupt(message)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        if self._stream_http10:
            self.transport.write(event)
        else:
            self.transport.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(event), event))
        self._streaming = False
        self._active = None
        self._pending.clear()
        self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _watch_sending(self) -> None:
        if self._stall is None and not self._closed:
            limit = self._server.limits.send_timeout_s
            self._stall = _WriteStall(self, self._loop.time() + limit)
            self._server.deadlines.tracked.add(self._stall)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _WriteStall:
    """The send deadline of a connection whose client stopped reading: checked by the
    worker's deadline sweep, and dropped as soon as the client reads again."""

    __slots__ = ("conn", "deadline")

    def __init__(self, conn: ResponseWriter, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline

    def on_deadline(self) -> None:
        self.deadline = 0.0
        log.info(
            "dropping a client that read nothing for %g s", self.conn._server.limits.send_timeout_s
        )
        self.conn.abort()
