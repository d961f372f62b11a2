"""Serving GET /metrics, GET /deployments (model deployments' circuit breakers, JSON) and the
liveness probe where the admin API does not run.

Two small servers for one tiny job: a threaded one for the recorder companion (on the admin
port when there is no store, else on a private Unix socket that the admin API reads), and an
asyncio one for a lone worker serving without a store (it keeps its own metrics). No
authentication unless a token is configured (TOLLWAY_METRICS_TOKEN): then
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http.client
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Protocol

import orjson

from tollway.analytics.deployments import DeploymentHealth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HEALTH = b'{"status":"ok"}'
_MAX_HEAD = 16384
_DEADLINE_S = 10.0

Render = Callable[[], str]


class Pages(Protocol):
    """What these servers show: the Prometheus exposition and the deployments' health."""

    def render(self) -> str: ...

    def deployments(self) -> list[DeploymentHealth]: ...


def authorized(header: str | None, token: str | None) -> bool:
    if token is None:
        return True
    if header is None:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def answer(
    path: str, authorization: str | None, pages: Pages, token: str | None
) -> tuple[int, str, bytes]:
    """(status, content type, body) for a GET of `path`."""
    path = path.split("?", 1)[0]
    if path in ("/metrics", "/deployments"):
        if not authorized(authorization, token):
            return 401, "application/json", b'{"error":"a bearer token is required"}'
        if path == "/deployments":
            items = [entry.as_json() for entry in pages.deployments()]
            return 200, "application/json", orjson.dumps({"items": items})
        return 200, CONTENT_TYPE, pages.render().encode()
    if path in ("/healthz", "/readyz", "/"):
        return 200, "application/json", _HEALTH
    return 404, "application/json", b'{"error":"not found"}'


class _Handler(BaseHTTPRequestHandler):
    server: ThreadedServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._reply(head=False)

    def do_HEAD(self) -> None:
        self._reply(head=True)

    def _reply(self, *, head: bool) -> None:
        status, content_type, body = answer(
            self.path, self.headers.get("authorization"), self.server.pages, self.server.token
        )
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return

    def address_string(self) -> str:
        return str(self.client_address[0]) if isinstance(self.client_address, tuple) else "local"


class ThreadedServer(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """An HTTP server on a socket bound by someone else (TCP or Unix)."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, pages: Pages, token: str | None = None) -> None:
        super().__init__(sock.getsockname(), _Handler)
        sock.setblocking(True)
        self.socket = sock
        self.pages = pages
        self.token = token
        self._thread: threading.Thread | None = None

    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = self.socket.accept()
        connection.settimeout(_DEADLINE_S)
        return connection, address

    def shutdown_request(self, request: object) -> None:
        assert isinstance(request, socket.socket)
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
        request.close()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.2,), name="tollway-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None


class _Exposition(asyncio.Protocol):
    """One request per connection, answered and closed."""

    def __init__(self, pages: Pages, token: str | None) -> None:
        self.pages = pages
        self.token = token
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are asyncio.Transport in all but their class tree.
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.deadline = asyncio.get_running_loop().call_later(_DEADLINE_S, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        head, found, _ = self.buffer.partition(b"\r\n\r\n")
        if not found:
            if len(self.buffer) > _MAX_HEAD:
                self.transport.abort()
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        authorization = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "authorization":
                authorization = value.strip()
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
            status, content_type, body = 405, "application/json", b'{"error":"use GET"}'
        else:
            status, content_type, body = answer(parts[1], authorization, self.pages, self.token)
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
        self.transport.write(
            f"HTTP/1.1 {status} {reason[status]}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + (body if parts[0] != "HEAD" else b"")
        )
        self.transport.close()


async def serve_in_loop(sock: socket.socket, pages: Pages, token: str | None) -> asyncio.Server:
    """Serves /metrics and /deployments from the running event loop (a lone worker's own)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Exposition(pages, token), sock=sock)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("recorder", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class MetricsUnavailable(Exception):
    """The recorder did not answer."""


def unix_reader(path: Path, page: str = "/metrics", timeout_s: float = 3.0) -> Render:
    """Reads a page of the recorder's (/metrics, /deployments) over its private Unix socket
    (for the admin API)."""

    def read() -> str:
        connection = _UnixConnection(str(path), timeout_s)
        try:
            connection.request("GET", page)
            response = connection.getresponse()
            body = response.read()
        except OSError as exc:
            raise MetricsUnavailable(f"the recorder did not answer: {exc}") from exc
        finally:
            connection.close()
        if response.status != 200:
            raise MetricsUnavailable(f"the recorder answered {response.status}")
        return body.decode()

    return read
