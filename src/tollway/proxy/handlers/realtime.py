"""OpenAI's Realtime API: `GET /v1/realtime?model=...` as a WebSocket, relayed to a provider
that serves it.

The call is a model call at its connect: the client's key, its subscription and the limits
are checked (the body phase runs with the model from the query), before any provider is
asked. The model's deployments are tried in the balancer's order until one accepts the
handshake (a refusal that another deployment could do better with, 429 or 5xx, or a failed
connection, moves on; any other is the client's answer, in OpenAI's error format). The
provider is sent the gateway's credentials and the model as the deployment names it; the
client's key never leaves the gateway (nor does a key a browser client put in its
subprotocols). Compression is not offered upstream, so that the provider's frames can be
read as they pass: their `response.done` events meter the session (llm/realtime.py). The
session is one call record when it ends: its tokens summed over its responses, its cost, its
length as latency; concurrency limits are held for as long as it is open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from urllib.parse import parse_qsl, urlencode

from tollway.config.snapshot import Deployment, ModelRoute
from tollway.errors import GatewayError
from tollway.llm.realtime import OPENAI_REALTIME, SessionUsage
from tollway.llm.websocket import key_protocol_taken, without_key_protocol
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.translated import unavailable
from tollway.proxy.http import STATUS_LINES, ClientGone
from tollway.proxy.replies import (
    failure_outcome,
    finish,
    refuse,
    send_error,
    served_headers,
    upstream_failure,
)
from tollway.proxy.routing import go_on_after
from tollway.proxy.tunnel import Tunnel, handshake
from tollway.proxy.upstream import UpstreamError, Upstreams

log = logging.getLogger("tollway.proxy")

_RETRYABLE = frozenset((408, 429, 500, 502, 503, 504))
# Handshake headers passed on from the client: the WebSocket's own, and OpenAI's beta flag.
_FORWARDED = (b"sec-websocket-key", b"sec-websocket-version", b"openai-beta")
# Of the provider's 101, what the client is shown.
_SWITCH_KEPT = frozenset(
    (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol")
)


class RealtimeSessions:
    """The worker's realtime relay."""

    __slots__ = ("balancers", "upstreams")

    def __init__(self, upstreams: Upstreams, balancers: Balancers) -> None:
        self.upstreams = upstreams
        self.balancers = balancers

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        request = ctx.request
        upgrade = (request.header(b"upgrade") or b"").lower()
        if upgrade != b"websocket" or request.header(b"sec-websocket-key") is None:
            refuse(
                ctx,
                conn,
                GatewayError(
                    426,
                    "/v1/realtime is a WebSocket endpoint: connect with Upgrade: websocket.",
                    code="websocket_required",
                ),
            )
            return None
        query = parse_qsl(request.query.decode("latin-1"), keep_blank_values=True)
        model = next((value for name, value in query if name == "model"), "")
        if not model:
            refuse(
                ctx,
                conn,
                GatewayError(
                    400,
                    "The realtime session needs a model: ?model=NAME.",
                    param="model",
                    code="missing_model",
                ),
            )
            return None
        ctx.model = model
        ctx.stream = True
        route = ctx.route
        assert route is not None
        if route.pipeline.body_phase:
            verdict = route.pipeline.body(ctx)
            if isinstance(verdict, Pending):
                return go_on_after(
                    ctx, conn, verdict, lambda ctx, conn: self._start(ctx, conn, query)
                )
            if verdict is not None:
                refuse(ctx, conn, verdict)
                return None
        return self._start(ctx, conn, query)

    def _start(
        self, ctx: RequestContext, conn: HttpConnection, query: list[tuple[str, str]]
    ) -> Awaitable[None] | None:
        model = ctx.model or ""
        route = ctx.config.route(model)
        service = ctx.route.service if ctx.route is not None else None
        if route is None or (service is not None and model not in service.models):
            refuse(ctx, conn, OPENAI_REALTIME.no_such_model(model))
            return None
        ordered = self.balancers.order(route, time.monotonic())
        usable = [d for d in ordered if d.provider.serves(OPENAI_REALTIME)]
        if not usable:
            first = ordered[0] if ordered else route.deployments[0]
            refuse(ctx, conn, unavailable(model, first.provider, OPENAI_REALTIME))
            return None
        return self._session(ctx, conn, route, usable, query)

    async def _session(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        route: ModelRoute,
        deployments: list[Deployment],
        query: list[tuple[str, str]],
    ) -> None:
        try:
            await self._relay(ctx, conn, route, deployments, query)
        finally:
            finish(ctx)

    async def _relay(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        route: ModelRoute,
        deployments: list[Deployment],
        query: list[tuple[str, str]],
    ) -> None:
        failure: UpstreamError | None = None
        for i, deployment in enumerate(deployments):
            provider = deployment.provider
            ctx.deployment = deployment
            ctx.attempts += 1
            ctx.upstream_started_at = time.monotonic()
            head = self._head(ctx, deployment, route, query)
            pool = self.upstreams.pool(provider)
            try:
                end, answer = await handshake(
                    provider.origin, pool.ssl_context, provider.timeouts, head
                )
            except UpstreamError as exc:
                failure = exc
                continue
            if answer.status == 101:
                break
            end.close()
            if answer.status in _RETRYABLE and i + 1 < len(deployments):
                continue
            status, body, passed = OPENAI_REALTIME.upstream_error(
                provider.name, answer.status, answer.headers, answer.body
            )
            ctx.status = status
            ctx.outcome = "upstream_error"
            conn.send_json(status, body, passed + served_headers(ctx))
            return
        else:
            assert failure is not None
            ctx.outcome = failure_outcome(failure)
            send_error(ctx, conn, upstream_failure(provider, failure), served_headers(ctx))
            return
        ctx.status = 101
        ctx.first_byte_at = time.monotonic()
        meter = SessionUsage()
        tunnel = Tunnel(conn, end, provider.timeouts.idle_s, self.upstreams.deadlines, meter.feed)
        lines = [STATUS_LINES[101]]
        kept = [(name, value) for name, value in answer.headers if name in _SWITCH_KEPT]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in kept)
        taken = key_protocol_taken(ctx.request.header(b"sec-websocket-protocol"), kept)
        if taken is not None:
            lines.append(b"sec-websocket-protocol: %s\r\n" % taken)
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in served_headers(ctx))
        lines.append(b"x-request-id: %s\r\n\r\n" % ctx.request.request_id)
        try:
            try:
                tunnel.join(b"".join(lines))
            except ClientGone:
                # Gone before its 101 went out: the provider's side closes, the tunnel ends.
                tunnel.client_closed()
                ctx.outcome = "client_disconnect"
                return
            await tunnel.closed
            if tunnel.ended_by == "client" or meter.closed:
                ctx.outcome = "completed"
            else:
                ctx.outcome = "timeout" if tunnel.ended_by == "idle" else "upstream_error"
        finally:
            end.close()
            ctx.usage = meter.usage

    def _head(
        self,
        ctx: RequestContext,
        deployment: Deployment,
        route: ModelRoute,
        query: list[tuple[str, str]],
    ) -> bytes:
        """The upgrade request to the provider: its credentials, the deployment's model."""
        model = ctx.model or ""
        upstream_model = deployment.model_for(route.name, model)
        provider = deployment.provider
        params = [(name, value) for name, value in query if name != "model"]
        params.insert(0, ("model", upstream_model))
        target = provider.path(OPENAI_REALTIME.endpoint) + b"?" + urlencode(params).encode()
        request = ctx.request
        lines = [b"GET %s HTTP/1.1\r\nhost: %s\r\n" % (target, provider.host)]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in provider.headers)
        lines.append(b"connection: Upgrade\r\nupgrade: websocket\r\n")
        for name in _FORWARDED:
            value = request.header(name)
            if value is not None:
                lines.append(b"%s: %s\r\n" % (name, value))
        protocols = request.header(b"sec-websocket-protocol")
        protocols = without_key_protocol(protocols) if protocols is not None else None
        if protocols is not None:
            lines.append(b"sec-websocket-protocol: %s\r\n" % protocols)
        if ctx.trace_parent is not None:
            lines.append(b"traceparent: %s\r\n" % ctx.trace_parent)
        lines.append(b"x-request-id: %s\r\n\r\n" % request.request_id)
        return b"".join(lines)
