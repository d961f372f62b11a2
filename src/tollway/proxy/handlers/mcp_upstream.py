"""Reaching upstream MCP servers from a worker: over Streamable HTTP here, over stdio and
HTTP+SSE by their channels (mcp_stdio.py, mcp_sse_client.py). Over HTTP: one session per server,
opened with `initialize` when first needed and opened again when the server forgets it (404);
answers read whether the server sends JSON or a stream of server-sent events. A server's tool
list is kept for a few seconds, so that listing tools does not ask every server every time.

Not on the hot path: MCP calls are few and each takes a model's or a tool's time."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from tollway.proxy.handlers.mcp_channel import CLIENT_INFO, PROTOCOL, Channel, UpstreamFailed
from tollway.proxy.handlers.mcp_sse_client import SseChannel
from tollway.proxy.handlers.mcp_stdio import StdioChannel

if TYPE_CHECKING:
    from tollway.config.mcp_upstream import McpUpstream

log = logging.getLogger("tollway.proxy")

# How long a server's tool list is reused.
TOOLS_TTL_S = 5.0
_MAX_PAGES = 20


class _SessionGone(Exception):
    pass


@dataclass(slots=True)
class _Session:
    id: str | None
    version: str


class McpUpstreams:
    """A worker's sessions with upstream MCP servers."""

    __slots__ = ("_channels", "_http", "_ids", "_locks", "_sessions", "_tools")

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None
        # Servers reached over a lasting channel (stdio, SSE), by server.
        self._channels: dict[McpUpstream, Channel] = {}
        self._sessions: dict[McpUpstream, _Session] = {}
        self._locks: dict[McpUpstream, asyncio.Lock] = {}
        self._tools: dict[McpUpstream, tuple[float, list[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)

    async def tools(self, upstream: McpUpstream) -> list[dict[str, Any]]:
        """The server's tools (every page), as it describes them."""
        kept = self._tools.get(upstream)
        if kept is not None and time.monotonic() - kept[0] < TOOLS_TTL_S:
            return kept[1]
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(_MAX_PAGES):
            page = await self.request(upstream, "tools/list", {"cursor": cursor} if cursor else {})
            tools.extend(t for t in page.get("tools") or [] if isinstance(t, dict))
            cursor = page.get("nextCursor")
            if not cursor:
                break
        self._tools[upstream] = (time.monotonic(), tools)
        return tools

    async def request(self, upstream: McpUpstream, method: str, params: dict[str, Any]) -> Any:
        """The result of `method` at the server (UpstreamFailed otherwise)."""
        if upstream.transport != "http":
            channel = self._channels.get(upstream)
            if channel is None:
                kind = StdioChannel if upstream.transport == "stdio" else SseChannel
                channel = self._channels[upstream] = kind(upstream)
            return await channel.request(method, params)
        session = await self._session(upstream)
        try:
            return await self._send(upstream, session, method, params)
        except _SessionGone:
            self._sessions.pop(upstream, None)
            return await self._send(upstream, await self._session(upstream), method, params)

    async def _session(self, upstream: McpUpstream) -> _Session:
        session = self._sessions.get(upstream)
        if session is not None:
            return session
        lock = self._locks.setdefault(upstream, asyncio.Lock())
        async with lock:
            session = self._sessions.get(upstream)
            if session is None:
                session = await self._initialize(upstream)
                self._sessions[upstream] = session
        return session

    async def _initialize(self, upstream: McpUpstream) -> _Session:
        params = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": CLIENT_INFO}
        response, result = await self._post(upstream, None, "initialize", params)
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        session = _Session(response.headers.get("mcp-session-id"), str(version or PROTOCOL))
        await self._notify(upstream, session, "notifications/initialized")
        return session

    async def _send(
        self, upstream: McpUpstream, session: _Session, method: str, params: dict[str, Any]
    ) -> Any:
        _, result = await self._post(upstream, session, method, params)
        return result

    async def _notify(self, upstream: McpUpstream, session: _Session, method: str) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        try:
            await self._client().post(
                upstream.url,
                content=orjson.dumps(message),
                headers=self._headers(upstream, session),
                timeout=upstream.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"{upstream.url} could not be reached: {exc}") from exc

    async def _post(
        self,
        upstream: McpUpstream,
        session: _Session | None,
        method: str,
        params: dict[str, Any],
    ) -> tuple[httpx.Response, Any]:
        ident = next(self._ids)
        message = {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}
        try:
            response = await self._client().post(
                upstream.url,
                content=orjson.dumps(message),
                headers=self._headers(upstream, session),
                timeout=upstream.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"{upstream.url} could not be reached: {exc}") from exc
        if response.status_code == 404 and session is not None and session.id is not None:
            raise _SessionGone
        kind = response.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            answer = _from_events(response.text, ident)
        else:
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                answer = None
        if not isinstance(answer, dict):
            raise UpstreamFailed(
                f"{upstream.url} answered {response.status_code} without a JSON-RPC answer"
            )
        error = answer.get("error")
        if isinstance(error, dict):
            raise UpstreamFailed(str(error.get("message") or "error"), int(error.get("code") or 0))
        if response.status_code >= 300 or "result" not in answer:
            raise UpstreamFailed(f"{upstream.url} answered {response.status_code}")
        return response, answer["result"]

    def _headers(self, upstream: McpUpstream, session: _Session | None) -> dict[str, str]:
        headers = dict(upstream.headers)
        headers["content-type"] = "application/json"
        headers["accept"] = "application/json, text/event-stream"
        if session is not None:
            headers["mcp-protocol-version"] = session.version
            if session.id is not None:
                headers["mcp-session-id"] = session.id
        return headers

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        return self._http


def _from_events(text: str, ident: int) -> Any:
    """The answer to request `ident` among a stream's events."""
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].lstrip() for line in event.split("\n") if line.startswith("data:")
        )
        if not data:
            continue
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("id") == ident:
            return message
    return None
