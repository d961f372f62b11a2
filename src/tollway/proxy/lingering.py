"""A connection's protocol while it lingers (proxy/connection.py `_linger`): what the client
still sends is read and dropped, so that closing does not reset the connection under an answer
the client has not read yet; the end and flow control go to the connection."""

from __future__ import annotations

import asyncio
from typing import Protocol


class _Connection(Protocol):
    """What a lingering protocol hands on (an HttpConnection)."""

    def connection_lost(self, exc: Exception | None) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


class Lingering(asyncio.Protocol):
    __slots__ = ("conn",)

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()
