"""The Redis wire, as the counters use it: URLs, RESP commands, and a connection whose replies
(parsed by hiredis, the parser redis-py uses) go to callbacks in order: no client object and no
task per command."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

log = logging.getLogger("tollway.limits")

Reply = Callable[[Any], None]


def parse_url(url: str) -> dict[str, Any]:
    """redis://[[user]:password@]host[:port][/db], rediss://... (TLS), unix:///path[?db=N]."""
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"a redis URL starts with redis://, rediss:// or unix:// (got {url!r})")
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password is not None:
        options["password"] = unquote(parts.password)
    query = parse_qs(parts.query)
    if parts.scheme == "unix":
        options["path"] = parts.path
        options["db"] = int(query.get("db", ["0"])[0])
        return options
    options["host"] = parts.hostname or "localhost"
    options["port"] = parts.port or 6379
    options["tls"] = parts.scheme == "rediss"
    path = parts.path.strip("/")
    options["db"] = int(path) if path else int(query.get("db", ["0"])[0])
    return options


def encode(args: Sequence[bytes | str | int | float]) -> bytes:
    """One RESP command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, float):
            data = b"%.17g" % arg
        else:
            data = b"%d" % arg
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RespProtocol(asyncio.Protocol):
    """One connection to Redis: commands written as they come, replies handed, in order, to
    the callbacks given with them."""

    def __init__(self, on_lost: Callable[[RespProtocol, Exception | None], None]) -> None:
        self.on_lost = on_lost
        self.reader = hiredis.Reader()
        self.waiting: deque[Reply] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one.)
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes, replies: Sequence[Reply]) -> None:
        assert self.transport is not None
        self.waiting.extend(replies)
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiting:
                log.error("redis sent a reply nobody asked for")
                continue
            self.waiting.popleft()(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost(self, exc)
