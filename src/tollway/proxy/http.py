"""The HTTP/1.1 vocabulary the data plane shares: parsed requests, request ids,
status lines, and the errors and protocols the server and the handlers exchange."""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Protocol

import httptools


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
        "client_address",
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
        client_address: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.request_id = request_id
        # The peer's IP address ("" when unknown); set by the connection.
        self.client_address = client_address

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def split_target(url: bytes) -> tuple[bytes, bytes]:
    """A request target's path and query."""
    if url[:1] == b"/":
        path, _, query = url.partition(b"?")
        return path, query
    # absolute-form ("http://host/path") or "*": let the URL parser take it apart.
    parsed = httptools.parse_url(url)
    return parsed.path or b"/", parsed.query or b""


class Cancellable(Protocol):
    def cancel(self) -> object: ...


class ClientGone(ConnectionError):
    """The client closed the connection or stopped reading past the send deadline."""


class Refusal:
    """A request the parser refused; answered in its turn, then the connection closes."""

    __slots__ = ("code", "message", "request_id", "status")

    def __init__(self, status: int, message: str, code: str, request_id: bytes) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.request_id = request_id


# The error `code` of each refusal, so that clients can tell them apart without parsing text.
REFUSAL_CODES = {
    400: "invalid_http_request",
    408: "request_timeout",
    413: "request_too_large",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_headers_too_large",
    505: "http_version_not_supported",
}


class RefuseRequest(Exception):
    """Raised inside a parser callback to refuse the request with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
