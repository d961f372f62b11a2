"""Same-format calls: the provider speaks the client's API, so its answer goes back as it is
(only its errors may be reshaped), and the failures every handler reports alike."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from tollway.config.snapshot import ProviderRuntime, RuntimeConfig
from tollway.errors import GatewayError
from tollway.proxy.connection import HttpConnection
from tollway.proxy.context import RequestContext
from tollway.proxy.http import Request
from tollway.proxy.upstream import Exchange, UpstreamError, UpstreamPool

log = logging.getLogger("tollway.proxy")

# Writes the provider's answer to the client: (client, provider, status, headers, body).
Answer = Callable[[HttpConnection, ProviderRuntime, int, list[tuple[bytes, bytes]], bytes], None]
# Writes a gateway error in the client's format.
SendError = Callable[[HttpConnection, GatewayError], None]


_NOT_AN_OBJECT = GatewayError(
    400,
    "We could not parse the JSON body of your request. The body must be a JSON object.",
    code="invalid_json",
)


def admit(
    config: RuntimeConfig, request: Request, conn: HttpConnection, send_error: SendError
) -> tuple[RequestContext, dict[str, Any]] | None:
    """The request phase every model call shares: run the snapshot's policy pipeline, then
    parse the body as a JSON object. None when an error was already sent."""
    ctx = RequestContext(request, conn, config)
    refusal = config.pipeline.run_request(ctx)
    if refusal is not None:
        send_error(conn, refusal)
        return None
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        send_error(conn, _NOT_AN_OBJECT)
        return None
    return ctx, body


def may_use(ctx: RequestContext, model: str) -> bool:
    """Whether the caller's key may use the model (always, without keys)."""
    return ctx.key is None or ctx.key.may_use(model)


def upstream_failure(provider: ProviderRuntime, exc: UpstreamError) -> GatewayError:
    return GatewayError(
        exc.status,
        f"Upstream provider '{provider.name}' failed: {exc.message}.",
        code=f"upstream_{exc.kind}",
    )


def provider_error(provider: ProviderRuntime, status: int, body: bytes) -> GatewayError:
    """The provider's error for the client. 401/403 concern the gateway's own credentials."""
    if status in (401, 403):
        return GatewayError(
            502,
            f"Upstream provider '{provider.name}' rejected the gateway's "
            f"credentials (HTTP {status}).",
            code="upstream_auth_failed",
        )
    return provider.kind.adapter.error(status, body)


class ForwardedCall(Exchange):
    """A non-streamed same-format call: the upstream's answer goes straight to the client."""

    __slots__ = ("answer", "client", "provider", "send_error")

    def __init__(
        self,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        client: HttpConnection,
        provider: ProviderRuntime,
        answer: Answer,
        send_error: SendError,
    ) -> None:
        super().__init__(pool, head, body)
        self.client = client
        self.provider = provider
        self.answer = answer
        self.send_error = send_error

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        try:
            if error is not None:
                self.send_error(self.client, upstream_failure(self.provider, error))
            else:
                self.answer(self.client, self.provider, status, headers, body)
        except Exception:
            # Called from the upstream's protocol callback: nothing above would catch this.
            log.exception("answering a forwarded call failed")
            self.client.abort()
