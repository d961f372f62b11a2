"""Upstream MCP servers that speak the older HTTP+SSE transport: a lasting GET stream whose
first event names where messages are posted; answers come back as events on the stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from tollway.proxy.handlers.mcp_channel import Channel, UpstreamFailed

if TYPE_CHECKING:
    from tollway.config.mcp_upstream import McpUpstream


class SseChannel(Channel):
    def __init__(self, upstream: McpUpstream) -> None:
        super().__init__(upstream)
        self._http: httpx.AsyncClient | None = None
        self._stream: httpx.Response | None = None
        self._reader: asyncio.Task[None] | None = None
        self._post_to = ""

    async def _connect(self) -> None:
        upstream = self.upstream
        timeout = httpx.Timeout(upstream.timeout_s, read=None)
        self._http = http = httpx.AsyncClient(trust_env=False, timeout=timeout)
        headers = {**dict(upstream.headers), "accept": "text/event-stream"}
        try:
            stream = await http.send(
                http.build_request("GET", upstream.url, headers=headers), stream=True
            )
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"{upstream.url} could not be reached: {exc}") from exc
        self._stream = stream
        kind = stream.headers.get("content-type", "")
        if stream.status_code != 200 or not kind.startswith("text/event-stream"):
            raise UpstreamFailed(
                f"{upstream.url} answered {stream.status_code} ({kind}), not a stream"
            )
        endpoint: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read(stream, endpoint))
        try:
            given = await asyncio.wait_for(endpoint, upstream.timeout_s)
        except TimeoutError:
            raise UpstreamFailed(f"{upstream.url} named no endpoint for messages") from None
        post_to = urljoin(upstream.url, given)
        if _origin(post_to) != _origin(upstream.url):
            # The server's credential goes only where the service says it may.
            raise UpstreamFailed(f"{upstream.url} named an endpoint on another origin")
        self._post_to = post_to

    async def _read(self, stream: httpx.Response, endpoint: asyncio.Future[str]) -> None:
        event, data = "message", list[str]()
        reason = "the stream ended"
        try:
            async for line in stream.aiter_lines():
                if line == "":
                    if data:
                        text = "\n".join(data)
                        if event == "endpoint":
                            if not endpoint.done():
                                endpoint.set_result(text)
                        elif event == "message":
                            self.received(text.encode())
                    event, data = "message", list[str]()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    event = line[6:].strip()
        except httpx.HTTPError as exc:
            reason = f"the stream broke: {exc}"
        if not endpoint.done():
            endpoint.set_exception(UpstreamFailed(reason))
        self.lost(reason)

    async def _write(self, message: dict[str, Any]) -> None:
        http = self._http
        if http is None or not self._post_to:
            raise UpstreamFailed("the server's stream is not open")
        headers = {**dict(self.upstream.headers), "content-type": "application/json"}
        try:
            answer = await http.post(self._post_to, content=orjson.dumps(message), headers=headers)
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"{self._post_to} could not be reached: {exc}") from exc
        if answer.status_code >= 300:
            raise UpstreamFailed(f"{self._post_to} answered {answer.status_code}")

    async def _disconnect(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        self._post_to = ""


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port
