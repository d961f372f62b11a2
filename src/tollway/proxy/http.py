"""The HTTP/1.1 vocabulary the data plane shares: parsed requests, request ids,
status lines, and the errors and protocols the server and the handlers exchange."""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Protocol


def status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase.encode())


STATUS_LINES = {code: status_line(code) for code in range(100, 600)}


class RequestIds:
    """Cheap unique ids: a random per-process prefix and a counter."""

    __slots__ = ("_n", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex().encode()
        self._n = 0

    def next(self) -> bytes:
        self._n += 1
        return b"%s%08x" % (self._prefix, self._n)


class Request:
    """One parsed request. Header names are lower-cased bytes."""

    __slots__ = (
        "body",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "request_id",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        http_version: str,
        keep_alive: bool,
        request_id: bytes,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.request_id = request_id

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Cancellable(Protocol):
    def cancel(self) -> object: ...


class ClientGone(ConnectionError):
    """The client closed the connection or stopped reading past the send deadline."""
