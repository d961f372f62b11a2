"""One client connection of the data plane's HTTP/1.1 server: parse, queue, dispatch in
order, write responses.

What it guarantees (each point has a test over raw sockets):

- keep-alive, with an idle timeout; pipelined requests are served strictly in order;
- request bodies in Content-Length or chunked form, bounded (413), headers bounded (431);
- `Expect: 100-continue`; request-smuggling forms are refused with 400 (llhttp is strict, and
  Transfer-Encoding on HTTP/1.0 is refused here as RFC 9112 6.1 asks); HTTP/0.9 gets 505;
- protocol upgrades only where the route passes them through (a WebSocket to a REST service:
  the connection becomes a tunnel after the upstream's 101); elsewhere a request that asks for
  one is answered and the connection closed;
- bodies read whole (model calls), or, on routes that forward them (REST services), handed to
  the handler as they arrive, with backpressure (proxy/request_body.py); a response finished
  before such a body has arrived closes the connection gently (what the client still sends is
  read and dropped for a few seconds, so that it sees the answer rather than a reset);
- a deadline for reading request headers (slowloris) and for a stalled body upload;
- a send deadline: a client that stops reading what was written to it (a stream or a whole
  body) for `send_timeout_s` is dropped, and its buffered response freed
  (proxy/response_writer.py, the writing side of the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import sys
from collections import deque
from typing import TYPE_CHECKING

import httptools

from tollway.proxy.http import (
    REFUSAL_CODES,
    Cancellable,
    ClientGone,
    Refusal,
    RefuseRequest,
    Request,
    split_target,
)
from tollway.proxy.lingering import Lingering
from tollway.proxy.request_body import BodyError, RequestBody, StreamedRequest
from tollway.proxy.response_writer import ResponseWriter

if TYPE_CHECKING:
    from tollway.proxy.server import HttpServer

log = logging.getLogger("tollway.server")

_VALID_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# Headers the server itself acts on; the others are only collected for the handlers.
_FRAMING_HEADERS = frozenset(
    (b"content-length", b"transfer-encoding", b"expect", b"x-request-id", b"upgrade")
)
# On routes that forward bodies as they arrive, a body announced at most this large is read
# whole all the same (one write upstream, and a retry can send it again).
_WHOLE_BODY = 64 * 1024
# How long a connection answered before its request body arrived keeps reading (and
# dropping) what the client still sends, so that the client reads the answer, not a reset.
_LINGER_S = 5.0


class HttpConnection(ResponseWriter):
    """One client connection: parse, queue, dispatch in order; responses are written by the
    ResponseWriter side."""

    __slots__ = (
        "_body",
        "_body_paused",
        "_body_size",
        "_client_address",
        "_closed",
        "_content_length",
        "_early",
        "_expect",
        "_head_bytes",
        "_head_done",
        "_headers",
        "_keep_alive_after_body",
        "_lingering",
        "_loop",
        "_parser",
        "_pending",
        "_read_paused",
        "_request_id",
        "_server",
        "_transfer_encoding",
        "_upgrade",
        "_upload",
        "_url",
        "deadline",
        "transport",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._pending: deque[Request | Refusal] = deque()
        self._closed = False
        self._client_address = ""
        self._read_paused = False
        # A body handed to its handler as it arrives, while its message is being read;
        # whether reading waits for that handler to take what is buffered; and whether the
        # connection may stay open once the body is in (until then it may not: an answer
        # written before the body has arrived closes it).
        self._upload: RequestBody | None = None
        self._body_paused = False
        self._keep_alive_after_body = False
        self._lingering = False
        # What the client sent after a request to switch protocols, for the tunnel.
        self._early = b""
        self._init_writer()
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
        # The parser holds this connection's callbacks: dropping it breaks that cycle (the
        # connection is then freed by reference counting, not by a later GC pass).
        self._parser = _CLOSED_PARSER
        self._server.connections.discard(self)
        self._server.deadlines.tracked.discard(self)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._writer_lost()
        upload = self._upload
        if upload is not None:
            self._upload = None
            upload.fail(ClientGone("client closed the connection"))

    def eof_received(self) -> bool:
        # A client that half-closes is treated as gone: HTTP clients do not half-close
        # while they still want an answer, and this is what cancels upstream work promptly.
        return False

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The parser reads nothing after a request to switch protocols. Its route either
            # passes it through (a REST service: `switch_protocols` makes the connection a
            # tunnel, starting with these early bytes), or answers it as plain HTTP with
            # `connection: close` (on_message_complete saw to that). If that answer has
            # already gone out, close now: a connection that no longer reads would never see
            # the client leave.
            self._early = data[upgrade.args[0] :]
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
        content_length = self._content_length
        expect = self._expect
        if self._transfer_encoding:
            if self._parser.get_http_version() == "1.0":
                raise RefuseRequest(400, "Transfer-Encoding is not allowed in HTTP/1.0.")
            if self._takes_stream():
                return
        elif content_length > _WHOLE_BODY and self._takes_stream():
            return
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
        # A streamed body's parts go to its RequestBody (as `_body`), its size counted from
        # far below zero: its own limit is the route's, checked there.
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
            if self._upload is not None:
                # (Its request, dispatched with the head, left no URL to read here.)
                self._end_upload()
                return
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

    def _takes_stream(self) -> bool:
        """Whether the request's route takes its body as it arrives; if so, it is dispatched
        now (only on an idle connection: pipelined requests are read whole, in turn)."""
        limit_of = self._server.streamed_body_limit
        if limit_of is None or self._active is not None or self._pending or self._upgrade:
            return False
        limit = limit_of(split_target(self._url)[0].decode("latin-1"))
        if limit is None:
            return False
        self._stream_request(limit)
        return True

    def _stream_request(self, limit: int) -> None:
        """Dispatch a request whose route takes its body as it arrives; its head is in."""
        limits = self._server.limits
        if not self._transfer_encoding and self._content_length > limit:
            raise RefuseRequest(413, f"Request body too large (limit {limit} bytes).")
        if self._expect is not None:
            if self._expect != b"100-continue":
                raise RefuseRequest(417, "Only 'Expect: 100-continue' is supported.")
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        upload = RequestBody(self, None if self._transfer_encoding else self._content_length, limit)
        raw_path, query = split_target(self._url)
        request = StreamedRequest(
            self._parser.get_method().decode("latin-1"),
            raw_path.decode("latin-1"),
            query,
            self._headers,
            self._parser.get_http_version(),
            False,
            self._request_id or self._server.ids.next(),
            self._client_address,
            upload,
        )
        self._keep_alive_after_body = self._parser.should_keep_alive()
        self._upload = upload
        self._body = upload  # type: ignore[assignment]
        self._body_size = -sys.maxsize
        self._url = b""
        self.deadline = self._loop.time() + limits.body_timeout_s
        self._start(request)

    def _end_upload(self) -> None:
        """The end of a body its handler has been reading as it came."""
        upload = self._upload
        assert upload is not None
        self._upload = None
        upload.finish()
        request = self._active
        if (
            isinstance(request, StreamedRequest)
            and request.upload is upload
            and not self._streaming
        ):
            # Its answer has not begun: it may keep the connection open after all.
            request.keep_alive = self._keep_alive_after_body
        self._reset_message()
        self.deadline = 0.0
        if self._lingering:
            self._close_now()

    def pause_body(self) -> None:
        """A streamed body's handler has enough unread: stop reading from the client."""
        if not self._body_paused:
            self._body_paused = True
            self.deadline = 0.0
            if not self._read_paused and self.transport is not None and not self._closed:
                self.transport.pause_reading()

    def resume_body(self) -> None:
        if self._body_paused:
            self._body_paused = False
            if not self._read_paused and self.transport is not None and not self._closed:
                self.transport.resume_reading()
            if self._upload is not None:
                self.deadline = self._loop.time() + self._server.limits.body_timeout_s

    def switch_protocols(self, head: bytes, protocol: asyncio.BaseProtocol) -> bytes:
        """Answer the active request with `head` (a 101) and hand the connection's bytes to
        `protocol` from now on (which passes connection_lost and the write callbacks back
        here). Returns what the client sent after its request, for the new protocol."""
        if self._closed or self.transport is None:
            raise ClientGone("client closed the connection")
        self.transport.write(head)
        self.transport.set_protocol(protocol)
        self.deadline = 0.0
        early, self._early = self._early, b""
        self._read_paused = False
        self.transport.resume_reading()
        return early

    def tunnel_closed(self) -> None:
        """The tunnel's other end is gone: close once what was written has gone out."""
        self._active = None
        self._task = None
        self._close()

    @property
    def busy(self) -> bool:
        """Whether a request is being answered on this connection."""
        return self._active is not None

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

    def _keep_alive(self) -> bool:
        request = self._active
        return (
            request is not None
            and request.keep_alive
            and not (self._server.draining and not self._pending)
        )

    # -- connection control ------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        self._stop_reading()
        upload = self._upload
        if upload is not None:
            # A body its handler reads as it comes broke off: the handler answers (or, with
            # its answer under way, drops the connection); nothing more is read.
            self._upload = None
            if self._active is not None:
                self._active.keep_alive = False
            upload.fail(BodyError(status, message))
            if self._active is None:
                self._close_now()
            return
        refusal = Refusal(
            status, message, REFUSAL_CODES[status], self._request_id or self._server.ids.next()
        )
        if self._active is None and not self._pending:
            self._write_error_and_close(refusal)
        else:
            self._pending.append(refusal)

    def on_deadline(self) -> None:
        limits = self._server.limits
        if self._lingering:
            self._close_now()
            return
        if self._upload is not None:
            if self._body_paused:
                # Waiting for the handler, not for the client.
                self.deadline = 0.0
            else:
                self._refuse(408, "Timed out reading the request body.")
            return
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
            if not self._body_paused:
                self.transport.resume_reading()

    def _close(self) -> None:
        upload = self._upload
        if upload is not None and not self._closed:
            # Answered before the body arrived: linger rather than reset the client.
            upload.abandon()
            self._linger()
            return
        self._close_now()

    def _close_now(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():
                # close() waits for the buffer to be sent; a client that never reads would
                # hold the socket and the buffer forever.
                self._watch_sending()

    def _linger(self) -> None:
        """Send what is written and the end of the stream, then read and drop what the
        client still sends until it closes (or `_LINGER_S` have passed)."""
        transport = self.transport
        if self._lingering or transport is None or not transport.can_write_eof():
            self._close_now()
            return
        self._lingering = True
        transport.set_protocol(Lingering(self))
        transport.write_eof()
        self.deadline = self._loop.time() + _LINGER_S
        self._read_paused = False
        self._body_paused = False
        transport.resume_reading()


_CLOSED_PARSER = httptools.HttpRequestParser(object())
