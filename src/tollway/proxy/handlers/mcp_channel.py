"""A session with an upstream MCP server over a lasting channel (a stdio process, an SSE
stream), where answers come back apart from the requests: what both transports share.

Requests are matched to their answers by id; the server's own requests (ping, roots) are
answered; the session is opened with `initialize` when first needed and opened again after
the channel is lost (a crashed process, a dropped stream), with a growing pause between
tries, so that a server that keeps failing is not relaunched in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tollway.config.mcp_upstream import McpUpstream

log = logging.getLogger("tollway.proxy")

PROTOCOL = "2025-06-18"
CLIENT_INFO = {"name": "tollway", "version": "1"}
# The pause after a lost channel before it is opened again: doubled each time it is lost
# soon after opening, up to the longest.
FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 30.0
# A channel that lasted this long was not failing at its start: the pause starts over.
STEADY_S = 10.0


class UpstreamFailed(Exception):
    """The server could not be reached or answered out of protocol (`code` None), or
    answered the request with a JSON-RPC error (its `code`)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Channel(ABC):
    """One session over one channel; subclasses open it and write to it."""

    def __init__(self, upstream: McpUpstream) -> None:
        self.upstream = upstream
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._lock = asyncio.Lock()
        self._open = False
        self._opened_at = 0.0
        self._pause = 0.0
        self._retry_at = 0.0
        self._lost = ""

    # -- for subclasses -----------------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Open the channel (raise UpstreamFailed when it cannot be)."""

    @abstractmethod
    async def _write(self, message: dict[str, Any]) -> None:
        """Send one message (raise UpstreamFailed when it cannot be)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the channel, if open; end what it runs."""

    def received(self, data: bytes) -> None:
        """One message from the server."""
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("MCP server %r sent a line that is not JSON", self.upstream)
            return
        if not isinstance(message, dict):
            return
        ident = message.get("id")
        if "method" in message:
            if ident is not None:
                # The server's own request: ping is answered, anything else declined.
                answer: dict[str, Any] = {"jsonrpc": "2.0", "id": ident}
                if message["method"] == "ping":
                    answer["result"] = {}
                else:
                    answer["error"] = {"code": -32601, "message": "not offered by the gateway"}
                asyncio.get_running_loop().create_task(self._quietly(answer))
            return
        waiter = self._waiting.pop(ident, None) if isinstance(ident, int) else None
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def lost(self, reason: str) -> None:
        """The channel is gone: every waiting request fails, and the next one opens it again
        (after a pause when it was lost soon after opening)."""
        if not self._open:
            return
        self._open = False
        self._lost = reason
        steady = time.monotonic() - self._opened_at >= STEADY_S
        self._pause = (
            FIRST_PAUSE_S if steady else min(LONGEST_PAUSE_S, max(FIRST_PAUSE_S, self._pause * 2))
        )
        self._retry_at = time.monotonic() + self._pause
        log.warning("MCP server %r lost: %s", self.upstream, reason)
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(UpstreamFailed(f"the server was lost: {reason}"))

    # -- for the gateway ----------------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """The result of `method` at the server (UpstreamFailed otherwise)."""
        await self._ready()
        return await self._ask(method, params)

    async def close(self) -> None:
        self._open = False
        await self._disconnect()

    async def _ready(self) -> None:
        if self._open:
            return
        async with self._lock:
            if self._open:
                return
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise UpstreamFailed(
                    f"the server was lost ({self._lost}); it is tried again in {wait:.1f} s"
                )
            await self._disconnect()
            await self._connect()
            self._open = True
            self._opened_at = time.monotonic()
            try:
                params = {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": CLIENT_INFO,
                }
                await self._ask("initialize", params)
                await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})
            except UpstreamFailed:
                self.lost("it did not complete the initialize handshake")
                raise

    async def _ask(self, method: str, params: dict[str, Any]) -> Any:
        ident = next(self._ids)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = waiter
        message = {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}
        try:
            await self._write(message)
            answer = await asyncio.wait_for(waiter, self.upstream.timeout_s)
        except TimeoutError:
            raise UpstreamFailed(f"no answer to {method} in {self.upstream.timeout_s} s") from None
        finally:
            self._waiting.pop(ident, None)
        error = answer.get("error")
        if isinstance(error, dict):
            raise UpstreamFailed(str(error.get("message") or "error"), int(error.get("code") or 0))
        if "result" not in answer:
            raise UpstreamFailed("an answer without a result")
        return answer["result"]

    async def _quietly(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(UpstreamFailed):
            await self._write(message)
