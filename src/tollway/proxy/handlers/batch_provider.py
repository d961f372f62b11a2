"""A passed-through batch's calls to its provider's Files and Batches APIs, with the provider's
credentials (never the client's key): JSON calls, the input's upload streamed from a file on
disk, a file's download written whole or not at all, and a file's deletion.

A 4xx other than 408/409/429 is `ProviderRefused`; those and 5xx are `ProviderBusy`. What the
client may see of a refusal is the gateway's own words (`ProviderRefused.code` and
`.message`): the provider's text (which may quote the gateway's key, masked) goes to the log
only, as `.detail`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import IO, Any

import orjson

from tollway.config.snapshot import ProviderRuntime
from tollway.llm.client_apis import credentials_refused
from tollway.proxy.exchange import fetch, open_stream
from tollway.proxy.upload import exchange
from tollway.proxy.upstream import UpstreamError, Upstreams, request_head

log = logging.getLogger("tollway.batches")

JSON = b"application/json"
_CHUNK = 256 * 1024


class ProviderRefused(Exception):
    """The provider refused a call (a 4xx other than 408, 409, 429)."""

    def __init__(self, provider: str, status: int, body: bytes) -> None:
        self.status = status
        self.detail = body[:500].decode("utf-8", "replace")
        if status in (401, 403):
            # As a native call answers it: the provider's text names the gateway's key.
            error = credentials_refused(provider, status)
            self.code, self.message = error.code or "upstream_auth_failed", error.message
        else:
            self.code = f"provider_{status}"
            self.message = f"Upstream provider '{provider}' refused the batch (HTTP {status})."
        super().__init__(f"{status}: {self.detail}")


class ProviderBusy(Exception):
    """The provider cannot take a call now (408, 409, 429, 5xx): tried again later."""


class Unreadable(Exception):
    """The provider answered with something the gateway cannot read: tried again later."""


class ProviderCalls:
    """The provider calls of passed-through batches, over the worker's upstream pools."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams

    async def json(
        self,
        provider: ProviderRuntime,
        method: bytes,
        path: str,
        body: bytes = b"",
        content_type: bytes = JSON,
    ) -> dict[str, Any]:
        """One call to the provider's Files or Batches API; its answer, a JSON object."""
        extra = ((b"content-type", content_type),) if method == b"POST" else ()
        head = request_head(
            method, provider.path(path), provider.host, provider.headers, extra, len(body)
        )
        status, _, answer = await fetch(self.upstreams.pool(provider), head, body)
        check(provider.name, status, answer)
        return _object(path, answer)

    async def upload(
        self, provider: ProviderRuntime, form: Path, content_type: bytes
    ) -> dict[str, Any]:
        """`POST /files` of a multipart body written to `form`, sent from the file as the
        upstream takes it (never held whole in memory)."""
        size = await asyncio.to_thread(os.path.getsize, form)
        handle = await asyncio.to_thread(form.open, "rb")
        try:
            head = request_head(
                b"POST",
                provider.path("/files"),
                provider.host,
                provider.headers,
                ((b"content-type", content_type),),
                size,
            )
            conn, pump = await exchange(
                self.upstreams.pool(provider), head, _FileBody(handle, size)
            )
            try:
                answer = await conn.read_all()
            finally:
                if pump is not None and not pump.done():
                    pump.cancel()
        finally:
            await asyncio.to_thread(handle.close)
        check(provider.name, conn.status, answer)
        return _object("/files", answer)

    async def save(self, provider: ProviderRuntime, path: str, into: Path) -> int:
        """A provider's file, written beside `into` and renamed whole onto it; its lines."""
        pool = self.upstreams.pool(provider)
        head = request_head(b"GET", provider.path(path), provider.host, provider.headers, (), 0)
        conn = await open_stream(pool, head, b"")
        if conn.status != 200:
            body = await conn.read_all()
            check(provider.name, conn.status, body)
        staged = into.with_suffix(".part")
        await asyncio.to_thread(into.parent.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(staged.open, "wb")
        lines = 0
        try:
            while True:
                data = await conn.next_chunk()
                if data is None:
                    break
                lines += data.count(b"\n")
                await asyncio.to_thread(handle.write, data)
        except BaseException:
            conn.abort()
            raise
        finally:
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(os.replace, staged, into)
        return lines

    async def delete(self, provider: ProviderRuntime, file_id: str, batch_id: str) -> None:
        """`DELETE /files/{id}`: the client's data no longer kept at the provider. A failure is
        logged, never fatal (the provider's own retention then applies)."""
        try:
            await self.json(provider, b"DELETE", f"/files/{file_id}")
        except (ProviderRefused, ProviderBusy, Unreadable, UpstreamError, OSError) as exc:
            log.warning(
                "batch %s: could not delete file %s at %s: %s",
                batch_id,
                file_id,
                provider.name,
                exc,
            )


def check(provider: str, status: int, body: bytes) -> None:
    if status in (408, 409, 429) or status >= 500:
        raise ProviderBusy(f"the provider answered {status}")
    if status >= 400:
        raise ProviderRefused(provider, status, body)


def _object(path: str, answer: bytes) -> dict[str, Any]:
    try:
        found = orjson.loads(answer)
    except orjson.JSONDecodeError:
        raise Unreadable(f"{path}: the answer is not JSON") from None
    if not isinstance(found, dict):
        raise Unreadable(f"{path}: the answer is not a JSON object")
    return found


class _FileBody:
    """A request body read from a file as it is sent (proxy/request_body.py's BodySource)."""

    __slots__ = ("_handle", "_size")

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self._handle = handle
        self._size = size

    @property
    def length(self) -> int | None:
        return self._size

    async def next(self) -> bytes | None:
        data = await asyncio.to_thread(self._handle.read, _CHUNK)
        return data or None

    def rewind(self) -> bool:
        self._handle.seek(0)
        return True
