"""Request bodies handed to their handler as they arrive, for routes that forward them (REST
services): uploads of any size pass through in bounded memory.

The connection feeds a `RequestBody` from the parser; the handler reads it with `next()`.
Backpressure: once `HIGH_WATER` bytes wait unread, the connection stops reading from the
client, and starts again when the handler has taken them. A body can be sent again from its
start (a retry on another upstream) as long as what was handed out so far fits in
`REPLAY_LIMIT`: those first bytes are kept; past them, the body is a one-way stream.

`WholeBody` gives a body read whole (small ones, and every model call's) the same interface.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from tollway.policies.context import IncomingRequest
from tollway.proxy.http import ClientGone, RefuseRequest, Request

HIGH_WATER = 256 * 1024
REPLAY_LIMIT = 64 * 1024


class BodyError(Exception):
    """The client's body failed on its way in (too large, too slow, malformed): the status
    and message to answer with, when nothing has been answered yet."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BodyReader(Protocol):
    """What a streamed body needs of its connection."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...


class BodySource(Protocol):
    """A request body to send upstream, whole or arriving."""

    @property
    def length(self) -> int | None:
        """Its size when known in advance (None: chunked)."""

    async def next(self) -> bytes | None:
        """The next bytes; None at the end. Raises BodyError or ClientGone."""

    def rewind(self) -> bool:
        """Start again from the first byte, if that is still possible."""


class WholeBody:
    """A body already read whole."""

    __slots__ = ("_given", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._given = False

    @property
    def length(self) -> int | None:
        return len(self.data)

    async def next(self) -> bytes | None:
        if self._given:
            return None
        self._given = True
        return self.data

    def rewind(self) -> bool:
        self._given = False
        return True


class RequestBody:
    """A body arriving from the client while its handler forwards it."""

    __slots__ = (
        "_abandoned",
        "_buffered",
        "_chunks",
        "_complete",
        "_error",
        "_kept",
        "_kept_size",
        "_paused",
        "_reader",
        "_replay_at",
        "_waiter",
        "length",
        "limit",
        "received",
    )

    def __init__(self, reader: BodyReader, length: int | None, limit: int | None) -> None:
        self._reader = reader
        self.length = length
        self.limit = limit
        self.received = 0
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._abandoned = False
        # What was handed out, in order, while it fits in REPLAY_LIMIT (None past it), and
        # where a replay after `rewind` has got to.
        self._kept: list[bytes] | None = []
        self._kept_size = 0
        self._replay_at = 0

    @property
    def complete(self) -> bool:
        """The whole body has arrived (the handler may not have read it all yet)."""
        return self._complete

    # -- the connection's side ----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes of the body from the parser. Past the route's limit, raises RefuseRequest
        (the connection then fails the body with a 413)."""
        self.received += len(data)
        limit = self.limit
        if limit is not None and self.received > limit:
            raise RefuseRequest(413, f"Request body too large (limit {limit} bytes).")
        if self._abandoned:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= HIGH_WATER and not self._paused:
            self._paused = True
            self._reader.pause_body()
        self._wake()

    # The connection appends a message's body parts to its body buffer: for a streamed
    # body, that buffer is this.
    append = feed

    def finish(self) -> None:
        self._complete = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The body cannot complete: the reader raises `error` (once it has read what came)."""
        if self._error is None and not self._complete:
            self._error = error
        self._wake()

    def abandon(self) -> None:
        """The handler has answered without the rest of the body: drop what is buffered and
        whatever else comes, and let the connection read (and discard) again."""
        self._abandoned = True
        self._chunks.clear()
        self._buffered = 0
        self._kept = None
        self.fail(ClientGone("the request was answered before its body was read"))
        if self._paused:
            self._paused = False
            self._reader.resume_body()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the handler's side -------------------------------------------------------------

    async def next(self) -> bytes | None:
        kept = self._kept
        if kept is not None and self._replay_at < len(kept):
            data = kept[self._replay_at]
            self._replay_at += 1
            return data
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if self._paused:
                    self._paused = False
                    self._reader.resume_body()
                self._keep(data)
                return data
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def _keep(self, data: bytes) -> None:
        kept = self._kept
        if kept is None:
            return
        self._kept_size += len(data)
        if self._kept_size > REPLAY_LIMIT:
            self._kept = None
        else:
            kept.append(data)
            self._replay_at = len(kept)

    def rewind(self) -> bool:
        if self._kept is None:
            return False
        self._replay_at = 0
        return True


class StreamedRequest(Request):
    """A request dispatched once its head is in, its body following in `upload`."""

    __slots__ = ("upload",)

    def __init__(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
        request_id: bytes,
        client_address: str,
        upload: RequestBody,
    ) -> None:
        super().__init__(
            method, path, query, headers, b"", http_version, keep_alive, request_id, client_address
        )
        self.upload = upload


def body_of(request: IncomingRequest) -> BodySource:
    """The request's body as a source to send upstream."""
    if isinstance(request, StreamedRequest):
        return request.upload
    return WholeBody(request.body)
