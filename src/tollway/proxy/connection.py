"""One client connection of the data plane's HTTP/1.1 server: parse, queue, dispatch in
order, write responses.

What it guarantees (each point has a test over raw sockets):

- keep-alive, with an idle timeout; pipelined requests are served strictly in order;
- request bodies in Content-Length or chunked form, bounded (413), headers bounded (431);
- `Expect: 100-continue`; request-smuggling forms are refused with 400 (llhttp is strict, and
  Transfer-Encoding on HTTP/1.0 is refused here as RFC 9112 6.1 asks); HTTP/0.9 gets 505;
- no protocol upgrades: a request that asks for one is answered and the connection closed;
- a deadline for reading request headers (slowloris) and for a stalled body upload;
- a send deadline: a client that stops reading what was written to it (a stream or a whole
  body) for `send_timeout_s` is dropped, and its buffered response freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from tollway.errors import error_body
from tollway.proxy.http import (
    REFUSAL_CODES,
    STATUS_LINES,
    Cancellable,
    ClientGone,
    Refusal,
    RefuseRequest,
    Request,
    status_line,
)

if TYPE_CHECKING:
    from tollway.proxy.server import HttpServer

log = logging.getLogger("tollway.server")

_VALID_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# Headers the server itself acts on; the others are only collected for the handlers.
_FRAMING_HEADERS = frozenset(
    (b"content-length", b"transfer-encoding", b"expect", b"x-request-id", b"upgrade")
)
_JSON = b"application/json"
# Bodies at least this large are written beside their head, not copied into one buffer.
_COPY_LIMIT = 16384


class HttpConnection(asyncio.Protocol):
    """One client connection: parse, queue, dispatch in order, write responses."""

    __slots__ = (
        "_active",
        "_body",
        "_body_size",
        "_client_address",
        "_closed",
        "_content_length",
        "_drain_waiter",
        "_expect",
        "_head_bytes",
        "_head_done",
        "_headers",
        "_interrupt",
        "_loop",
        "_parser",
        "_pending",
        "_read_paused",
        "_request_id",
        "_server",
        "_stall",
        "_stream_http10",
        "_streaming",
        "_task",
        "_transfer_encoding",
        "_upgrade",
        "_url",
        "_write_paused",
        "deadline",
        "transport",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._pending: deque[Request | Refusal] = deque()
        self._active: Request | None = None
        # The work answering the active request: its task, or an attached callback exchange.
        self._task: Cancellable | None = None
        self._closed = False
        self._client_address = ""
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._stream_http10 = False
        self._streaming = False
        # Writes a stream's final error event when the stream is cut (drain deadline).
        self._interrupt: Callable[[str], bytes] | None = None
        # Watches the send deadline while the client is not reading what was written.
        self._stall: _WriteStall | None = None
        self.deadline = 0.0
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._content_length = 0
        self._transfer_encoding = False
        self._expect: bytes | None = None
        self._request_id: bytes | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_bytes = 0
        self._head_done = False
        self._upgrade = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._client_address = peer[0] if isinstance(peer, tuple) and peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.connections.add(self)
        self._server.deadlines.tracked.add(self)
        self.deadline = self._loop.time() + self._server.limits.header_timeout_s

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._server.deadlines.tracked.discard(self)
        if self._stall is not None:
            self._server.deadlines.tracked.discard(self._stall)
            self._stall = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ClientGone("client closed the connection"))

    def eof_received(self) -> bool:
        # A client that half-closes is treated as gone: HTTP clients do not half-close
        # while they still want an answer, and this is what cancels upstream work promptly.
        return False

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

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol upgrades here: the request that asked for one is answered as plain
            # HTTP with `connection: close` (on_message_complete saw to that), and the parser
            # reads nothing after it. If that answer has already gone out, close now: a
            # connection that no longer reads would never see the client leave.
            self._stop_reading()
            if self._active is None and not self._pending:
                self._close()
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if isinstance(refusal, RefuseRequest):
                self._refuse(refusal.status, refusal.message)
            else:
                log.exception("parser callback failed")
                self._refuse(400, "Malformed HTTP request.")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"Malformed HTTP request: {exc}.")
        else:
            if not self._head_done and self._url:
                # llhttp buffers a header that never ends; bound it before it grows.
                self._head_bytes += len(data)
                if self._head_bytes > self._server.limits.max_header_bytes * 2:
                    self._refuse(431, "Request header fields too large.")

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_message()
        self.deadline = self._loop.time() + self._server.limits.header_timeout_s

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._server.limits.max_header_bytes:
            raise RefuseRequest(414, "Request URI too long.")

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._server.limits
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes + len(self._url) > limits.max_header_bytes:
            raise RefuseRequest(431, "Request header fields too large.")
        if len(self._headers) >= limits.max_headers:
            raise RefuseRequest(
                431, f"Too many request header fields (limit {limits.max_headers})."
            )
        name = name.lower()
        self._headers.append((name, value))
        if name in _FRAMING_HEADERS:
            # llhttp has already refused malformed or conflicting framing headers.
            if name == b"content-length":
                self._content_length = int(value)
            elif name == b"transfer-encoding":
                self._transfer_encoding = True
            elif name == b"expect":
                self._expect = value.lower()
            elif name == b"upgrade":
                self._upgrade = True
            elif _VALID_REQUEST_ID.fullmatch(value):
                self._request_id = value

    def on_headers_complete(self) -> None:
        self._head_done = True
        limits = self._server.limits
        if self._transfer_encoding and self._parser.get_http_version() == "1.0":
            raise RefuseRequest(400, "Transfer-Encoding is not allowed in HTTP/1.0.")
        content_length = self._content_length
        expect = self._expect
        if content_length > limits.max_body_bytes:
            raise RefuseRequest(
                413, f"Request body too large (limit {limits.max_body_bytes} bytes)."
            )
        if expect is not None:
            if expect != b"100-continue":
                raise RefuseRequest(417, "Only 'Expect: 100-continue' is supported.")
            # A 100 may only go out when no earlier response is being written; otherwise the
            # client sends the body after its own short wait, as RFC 9110 allows.
            if self._active is None and not self._pending and self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.deadline = self._loop.time() + limits.body_timeout_s

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        limit = self._server.limits.max_body_bytes
        if self._body_size > limit:
            raise RefuseRequest(413, f"Request body too large (limit {limit} bytes).")
        self._body.append(body)
        self.deadline = self._loop.time() + self._server.limits.body_timeout_s

    def on_message_complete(self) -> None:
        url = self._url
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
        else:
            # absolute-form ("http://host/path") or "*": let the URL parser take it apart.
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        version = self._parser.get_http_version()
        if version == "0.9":
            # llhttp accepts a bare request line; nothing here speaks HTTP/0.9.
            raise RefuseRequest(505, "HTTP/0.9 is not supported; use HTTP/1.1.")
        keep_alive = self._parser.should_keep_alive()
        if self._upgrade and self._parser.should_upgrade():
            keep_alive = False
        request = Request(
            self._parser.get_method().decode("latin-1"),
            raw_path.decode("latin-1"),
            query,
            self._headers,
            body,
            version,
            keep_alive,
            self._request_id or self._server.ids.next(),
            self._client_address,
        )
        self._reset_message()
        self.deadline = 0.0
        if self._active is None and not self._pending:
            self._start(request)
        else:
            self._pending.append(request)
            if len(self._pending) >= self._server.limits.max_pipelined:
                self._stop_reading()

    # -- dispatch ------------------------------------------------------------------------

    def _start(self, item: Request | Refusal) -> None:
        if isinstance(item, Refusal):
            self._active = None
            self._write_error_and_close(item)
            return
        self._active = item
        try:
            work = self._server.dispatch(item, self)
        except Exception:
            log.exception("dispatch failed for %s %s", item.method, item.path)
            if self._active is item:
                self.send_error(500, "Internal gateway error.")
            return
        if work is not None:
            task: asyncio.Task[None] = self._loop.create_task(work)  # type: ignore[arg-type]
            if self._active is item:
                self._task = task
            task.add_done_callback(self._task_done)

    def attach(self, work: Cancellable) -> None:
        """Tie callback-driven work to the active request: cancelled if the client leaves."""
        self._task = work

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if task is not self._task:
            if exc is not None and not isinstance(exc, ClientGone):
                log.error("request task failed after its response", exc_info=exc)
            return
        # The handler ended without finishing its response.
        self._task = None
        if exc is not None and not isinstance(exc, ClientGone):
            log.error("request task failed", exc_info=exc)
        if self._closed:
            return
        if self._streaming:
            self.abort()
        else:
            self.send_error(500, "Internal gateway error.")

    def _finish_response(self, keep_alive: bool) -> None:
        self._active = None
        self._task = None
        self._streaming = False
        self._interrupt = None
        if self._closed:
            return
        if not keep_alive:
            self._close()
            return
        if self._pending:
            item = self._pending.popleft()
            if self._read_paused and len(self._pending) < self._server.limits.max_pipelined // 2:
                self._resume_reading()
            self._start(item)
        elif self._server.draining:
            self._close()
        else:
            self.deadline = self._loop.time() + self._server.limits.keepalive_timeout_s

    # -- writing responses -------------------------------------------------------------

    def _keep_alive(self) -> bool:
        request = self._active
        return (
            request is not None
            and request.keep_alive
            and not (self._server.draining and not self._pending)
        )

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

    @property
    def closed(self) -> bool:
        return self._closed

    # -- connection control ------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        self._stop_reading()
        refusal = Refusal(
            status, message, REFUSAL_CODES[status], self._request_id or self._server.ids.next()
        )
        if self._active is None and not self._pending:
            self._write_error_and_close(refusal)
        else:
            self._pending.append(refusal)

    def _write_error_and_close(self, refusal: Refusal) -> None:
        if self.transport is not None and not self._closed:
            body = error_body(refusal.status, refusal.message, code=refusal.code)
            self.transport.write(
                b"%scontent-type: application/json\r\ncontent-length: %d\r\n"
                b"x-request-id: %s\r\nconnection: close\r\n\r\n%s"
                % (STATUS_LINES[refusal.status], len(body), refusal.request_id, body)
            )
        self._close()

    def on_deadline(self) -> None:
        limits = self._server.limits
        if self._active is not None:
            # Reading the next pipelined request while one is being answered.
            self.deadline = self._loop.time() + limits.header_timeout_s
            return
        if self._url or self._headers or self._head_done:
            status = 408
            self._refuse(status, "Timed out reading the request.")
        else:
            self._close()

    def close_when_idle(self) -> None:
        if self._active is None and not self._pending:
            self._close()

    def _stop_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self._closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self._closed:
            self._read_paused = False
            self.transport.resume_reading()

    def _close(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():
                # close() waits for the buffer to be sent; a client that never reads would
                # hold the socket and the buffer forever.
                self._watch_sending()

    def _watch_sending(self) -> None:
        if self._stall is None and not self._closed:
            limit = self._server.limits.send_timeout_s
            self._stall = _WriteStall(self, self._loop.time() + limit)
            self._server.deadlines.tracked.add(self._stall)

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

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _WriteStall:
    """The send deadline of a connection whose client stopped reading: checked by the
    worker's deadline sweep, and dropped as soon as the client reads again."""

    __slots__ = ("conn", "deadline")

    def __init__(self, conn: HttpConnection, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline

    def on_deadline(self) -> None:
        self.deadline = 0.0
        log.info(
            "dropping a client that read nothing for %g s", self.conn._server.limits.send_timeout_s
        )
        self.conn.abort()
