"""Anthropic's Messages API, inbound: `POST /v1/messages` and `/v1/messages/count_tokens`.

Anthropic-native clients (the `anthropic` SDK, coding agents that take a base URL) call any
configured model here. When the model's provider is Anthropic, the request goes through as it
is, byte for byte but for the model name, so every Anthropic feature works. For any other
provider it is mapped to the canonical form and through that provider's adapter
(see llm/anthropic_messages.py for the rules). Errors use Anthropic's shape.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.config.snapshot import ProviderRuntime
from tollway.errors import GatewayError
from tollway.llm import anthropic_messages
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.forward import (
    ForwardedCall,
    admit,
    may_use,
    provider_error,
    upstream_failure,
)
from tollway.proxy.handlers.llm import SnapshotHolder
from tollway.proxy.handlers.translate import (
    ANTHROPIC_CLIENT,
    translated_chat,
    translated_count_tokens,
)
from tollway.proxy.http import Request
from tollway.proxy.streaming import relay_sse
from tollway.proxy.upstream import UpstreamError, UpstreamPool, Upstreams, request_head

_JSON = b"application/json"
_SSE = b"text/event-stream"


def _send(conn: HttpConnection, error: GatewayError) -> None:
    conn.send_json(error.status, anthropic_messages.error_body(error.status, error.message))


def _error_event(message: str, code: str) -> bytes:
    return b"event: error\ndata: " + anthropic_messages.error_body(502, message) + b"\n\n"


class MessagesApi:
    def __init__(self, snapshot: SnapshotHolder, upstreams: Upstreams) -> None:
        self.snapshot = snapshot
        self.upstreams = upstreams

    def _parse(
        self,
        request: Request,
        conn: HttpConnection,
    ) -> tuple[dict[str, Any], str, ProviderRuntime, str] | None:
        """Policies, body and route; None when an error was already sent."""
        config = self.snapshot.current
        admitted = admit(config, request, conn, _send)
        if admitted is None:
            return None
        ctx, body = admitted
        model = body.get("model")
        if not isinstance(model, str) or not model:
            _send(conn, GatewayError(400, "model: Field required"))
            return None
        route = config.route(model)
        if route is None or not may_use(ctx, model):
            _send(conn, GatewayError(404, f"model: {model} (not found or not available)"))
            return None
        deployment = route.balancer.pick()
        return body, model, deployment.provider, deployment.model or model

    def messages(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        parsed = self._parse(request, conn)
        if parsed is None:
            return None
        body, model, provider, upstream_model = parsed
        stream = body.get("stream") is True
        if provider.kind.anthropic_native:
            payload = request.body
            if upstream_model != model:
                payload = orjson.dumps({**body, "model": upstream_model})
            return self._pass_through(conn, request, provider, "/messages", payload, stream)
        try:
            canonical = anthropic_messages.to_chat_request(body)
        except GatewayError as error:
            _send(conn, error)
            return None
        return translated_chat(
            conn,
            self.upstreams,
            provider,
            canonical,
            upstream_model,
            stream,
            True,
            request.request_id,
            ANTHROPIC_CLIENT,
        )

    def count_tokens(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        parsed = self._parse(request, conn)
        if parsed is None:
            return None
        body, model, provider, upstream_model = parsed
        if not provider.kind.anthropic_native:
            try:
                # count_tokens takes no max_tokens; the mapping wants one and counts none.
                canonical = anthropic_messages.to_chat_request(
                    {**body, "max_tokens": 1, "stream": False}
                )
            except GatewayError as error:
                _send(conn, error)
                return None
            return translated_count_tokens(
                conn, self.upstreams, provider, canonical, upstream_model, request.request_id
            )
        payload = request.body
        if upstream_model != model:
            payload = orjson.dumps({**body, "model": upstream_model})
        return self._pass_through(conn, request, provider, "/messages/count_tokens", payload, False)

    def _pass_through(
        self,
        conn: HttpConnection,
        request: Request,
        provider: ProviderRuntime,
        path: str,
        payload: bytes,
        stream: bool,
    ) -> Awaitable[None] | None:
        extra = [
            (b"content-type", _JSON),
            (b"accept", _SSE if stream else _JSON),
            (b"x-request-id", request.request_id),
        ]
        # Beta features are chosen per request by the client; pass its choice on.
        beta = request.header(b"anthropic-beta")
        if beta is not None:
            extra.append((b"anthropic-beta", beta))
        head = request_head(
            b"POST",
            provider.path(path),
            provider.host,
            provider.headers,
            tuple(extra),
            len(payload),
        )
        pool = self.upstreams.pool(provider)
        if stream:
            return self._stream(conn, provider, pool, head, payload)
        exchange = ForwardedCall(pool, head, payload, conn, provider, _answer, _send)
        conn.attach(exchange)
        exchange.start()
        return None

    async def _stream(
        self,
        conn: HttpConnection,
        provider: ProviderRuntime,
        pool: UpstreamPool,
        head: bytes,
        payload: bytes,
    ) -> None:
        try:
            upstream = await pool.open(head, payload)
            if upstream.status >= 400 or not _is_sse(upstream.headers):
                data = await upstream.read_all()
                _answer(conn, provider, upstream.status, upstream.headers, data)
                return
        except UpstreamError as exc:
            _send(conn, upstream_failure(provider, exc))
            return
        await relay_sse(conn, upstream, _error_event)


def _answer(
    conn: HttpConnection,
    provider: ProviderRuntime,
    status: int,
    headers: list[tuple[bytes, bytes]],
    data: bytes,
) -> None:
    if status in (401, 403):
        _send(conn, provider_error(provider, status, data))
    else:
        # Anthropic's own body, errors included, is already in the client's format.
        conn.send_json(status, data)


def _is_sse(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and value.startswith(_SSE) for name, value in headers)
