"""Native calls: the provider speaks the client's API, so its answer goes back as it is (only
its errors may be reshaped into the client's error format), whole or streamed."""

from __future__ import annotations

import logging

from tollway.config.snapshot import ProviderRuntime
from tollway.llm.client_apis import ClientApi
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.exchange import Exchange, open_stream
from tollway.proxy.replies import (
    failure_outcome,
    finish,
    send_error,
    send_verdict,
    upstream_failure,
)
from tollway.proxy.streaming import relay_native
from tollway.proxy.upstream import UpstreamError, UpstreamPool

log = logging.getLogger("tollway.proxy")

_JSON = b"application/json"
_SSE = b"text/event-stream"


class CallExchange(Exchange):
    """A non-streamed model call's exchange: it answers the client, then closes the call's
    account. Cancelled when the client leaves."""

    __slots__ = ("api", "client", "ctx", "provider")

    def __init__(
        self,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        ctx: RequestContext,
        client: HttpConnection,
        api: ClientApi,
        provider: ProviderRuntime,
    ) -> None:
        super().__init__(pool, head, body)
        self.ctx = ctx
        self.client = client
        self.api = api
        self.provider = provider

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        ctx = self.ctx
        try:
            if error is not None:
                ctx.outcome = failure_outcome(error)
                send_error(ctx, self.client, upstream_failure(self.provider, error))
                return
            ctx.status = status
            pipeline = ctx.route.pipeline if ctx.route is not None else None
            if pipeline is not None and pipeline.response_phase:
                verdict = pipeline.response(ctx)
                if verdict is not None:
                    ctx.outcome = "refused"
                    send_verdict(ctx, self.client, verdict)
                    return
            self.answer(status, headers, body)
        except Exception:
            # Called from the upstream's protocol callback: nothing above would catch this.
            log.exception("answering a %s call failed", self.api.name)
            ctx.outcome = "error"
            self.client.abort()
        finally:
            finish(ctx)

    def answer(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        raise TypeError(f"{type(self).__name__} must define answer()")

    def cancel(self) -> None:
        super().cancel()
        finish(self.ctx, "client_disconnect")


class NativeCall(CallExchange):
    __slots__ = ()

    def answer(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        answer_native(self.ctx, self.client, self.api, self.provider, status, headers, body)


def answer_native(
    ctx: RequestContext,
    conn: HttpConnection,
    api: ClientApi,
    provider: ProviderRuntime,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    if status >= 400:
        ctx.outcome = "upstream_error"
        status, body, passed = api.upstream_error(provider.name, status, headers, body)
        ctx.status = status
        conn.send_json(status, body, passed)
        return
    ctx.outcome = "completed"
    route = ctx.route
    if route is not None and route.pipeline.done_phase:
        ctx.usage = api.usage_of(body)
    conn.send(status, [(b"content-type", _content_type(headers) or _JSON)], body)


async def native_stream(
    ctx: RequestContext,
    conn: HttpConnection,
    api: ClientApi,
    provider: ProviderRuntime,
    pool: UpstreamPool,
    head: bytes,
    payload: bytes,
) -> None:
    try:
        try:
            upstream = await open_stream(pool, head, payload)
            status, headers = upstream.status, upstream.headers
            ctx.status = status
            if status < 300 and _content_type(headers).startswith(_SSE):
                route = ctx.route
                if route is not None and route.pipeline.response_phase:
                    verdict = route.pipeline.response(ctx)
                    if verdict is not None:
                        upstream.abort()
                        ctx.outcome = "refused"
                        send_verdict(ctx, conn, verdict)
                        return
                await relay_native(ctx, conn, upstream, api)
                return
            data = await upstream.read_all()
        except UpstreamError as exc:
            ctx.outcome = failure_outcome(exc)
            send_error(ctx, conn, upstream_failure(provider, exc))
            return
        answer_native(ctx, conn, api, provider, status, headers, data)
    finally:
        finish(ctx)


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"content-type":
            return value
    return b""
