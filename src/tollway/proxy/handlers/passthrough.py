"""REST services: any method under a service's route prefix, forwarded to a target of its pool.

The request goes out as it came, but for what only the hop to the gateway meant: hop-by-hop
headers, the `host`, and the credentials the caller presented to the gateway (its key is the
gateway's business, never the upstream's). The path is rewritten (prefix stripped or
replaced), the service's static headers and `x-forwarded-*` are added, then its request
header rules applied. The body goes upstream as it arrives (proxy/request_body.py).

Which version (the canary's share) and which target (the pool's strategy, healthy targets
first) are proxy/targets.py's; a try that fails before anything went to the client (no
connection, a reset or a timeout before the answer, or an answer the service retries) is
retried on another target for idempotent methods (any method when the service says so), as
long as the body can be sent again.

The answer comes back with the response header rules applied: small bodies whole, others
streamed as they arrive (SSE and chunked answers as they come) with backpressure both ways;
a body cut short by the upstream is cut short to the client too (the chunked framing is left
unfinished), never passed off as complete. A request to switch protocols (WebSocket) is
passed through to the target and the connection becomes a tunnel (proxy/tunnel.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from tollway.config.rest_service import RestBackend, RestTarget
from tollway.config.snapshot import ServiceRuntime
from tollway.errors import GatewayError
from tollway.llm.websocket import key_protocol_taken, without_key_protocol
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.http import STATUS_LINES, ClientGone
from tollway.proxy.replies import failure_outcome, finish, send_error
from tollway.proxy.request_body import (
    BodyError,
    BodySource,
    StreamedRequest,
    body_of,
)
from tollway.proxy.targets import VERSION_HEADER, TargetPools
from tollway.proxy.tunnel import Tunnel, handshake
from tollway.proxy.upload import client_failure, exchange
from tollway.proxy.upstream import UpstreamConnection, UpstreamError

log = logging.getLogger("tollway.proxy")

# Headers that describe one hop, not the message (RFC 9110 7.6.1), and the ones the gateway
# sets itself.
_HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    )
)
# The client's credentials for the gateway, and what it says to the gateway alone. A
# WebSocket's subprotocols may hold a browser's key: they go on filtered, with the upgrade.
_SUBPROTOCOLS = b"sec-websocket-protocol"
_GATEWAY_ONLY = frozenset(
    (b"authorization", b"x-api-key", b"api-key", VERSION_HEADER, _SUBPROTOCOLS)
)
_NOT_FORWARDED = _HOP_BY_HOP | _GATEWAY_ONLY
_ANSWER_DROPPED = _HOP_BY_HOP | frozenset((b"x-request-id",))
# What a 101 keeps of the target's head: the switch is the point of it.
_SWITCH_DROPPED = _ANSWER_DROPPED - {b"connection", b"upgrade"}
# Answers up to this size with a known length are read whole and sent in one write.
_WHOLE_LIMIT = 1024 * 1024
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))


class _Failed(Exception):
    """A try that failed before anything went to the client: another target may take it."""

    def __init__(self, error: GatewayError, outcome: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.outcome = outcome


class RestProxy:
    __slots__ = ("deadlines", "targets")

    def __init__(self, targets: TargetPools, deadlines: Deadlines) -> None:
        self.targets = targets
        self.deadlines = deadlines

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None and route.service is not None
        service = route.service
        assert service.rest is not None
        request = ctx.request
        backend = self.targets.backend(service.rest, service.id, request)
        limit = backend.max_request_bytes
        if limit is not None:
            size = request.upload.received if isinstance(request, StreamedRequest) else 0
            size = max(size, len(request.body))
            if size > limit:
                send_error(ctx, conn, _too_large(limit))
                finish(ctx, "refused")
                return None
            if isinstance(request, StreamedRequest):
                request.upload.limit = limit
        if backend.websockets and _asks_upgrade(ctx):
            return self._switch(ctx, conn, service, backend)
        return self._forward(ctx, conn, service, backend)

    # -- plain HTTP ------------------------------------------------------------------------

    async def _forward(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        service: ServiceRuntime,
        backend: RestBackend,
    ) -> None:
        request = ctx.request
        body = body_of(request)
        retries = backend.retries
        attempts = 1 + (
            retries.attempts if request.method in IDEMPOTENT or retries.non_idempotent else 0
        )
        headers = _forwarded_headers(ctx, service, backend)
        path = backend.upstream_path(service.prefix, request.path)
        tried: list[str] = []
        try:
            while True:
                target = self.targets.pick(backend, request, tried)
                if target is None:
                    break
                tried.append(target.name)
                ctx.attempts = len(tried)
                may_retry = len(tried) < attempts and len(tried) < len(backend.targets)
                head = _request_head(request.method, target, path, request.query, headers, body)
                state = self.targets.state(backend, target)
                state.in_flight += 1
                try:
                    await self._try(ctx, conn, backend, target, head, body, may_retry)
                    return
                except _Failed as failed:
                    if may_retry and body.rewind():
                        log.info(
                            "retrying %s %s on another target: %s",
                            request.method,
                            request.path,
                            failed.error.message,
                        )
                        continue
                    ctx.outcome = failed.outcome
                    send_error(ctx, conn, failed.error)
                    return
                finally:
                    state.in_flight -= 1
            send_error(ctx, conn, _NO_TARGET)
        except BodyError as exc:
            # The client's own body failed (too large, too slow, malformed): its answer.
            ctx.outcome = "refused"
            send_error(ctx, conn, GatewayError(exc.status, exc.message, code="invalid_body"))
        finally:
            finish(ctx)

    async def _try(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        backend: RestBackend,
        target: RestTarget,
        head: bytes,
        body: BodySource,
        may_retry: bool,
    ) -> None:
        """One try on `target`: answers the client, or raises _Failed with nothing sent."""
        pump: asyncio.Task[BaseException | None] | None = None
        upstream: UpstreamConnection | None = None
        try:
            try:
                ctx.upstream_started_at = time.monotonic()
                upstream, pump = await self._exchange(target, head, body, ctx.request.method)
                status = upstream.status
                if status in backend.passive_check.statuses:
                    self.targets.failed(backend, target, f"answered {status}")
                else:
                    self.targets.succeeded(backend, target)
                if may_retry and status in backend.retries.on_statuses and body.rewind():
                    raise _Failed(
                        GatewayError(
                            502,
                            f"The upstream of this service answered {status}.",
                            code="upstream_status",
                        ),
                        "upstream_error",
                    )
                headers = [(n, v) for n, v in upstream.headers if n not in _ANSWER_DROPPED]
                headers = backend.response_rules.apply(headers)
                length = _content_length(upstream.headers)
                if upstream.done or (length is not None and length <= _WHOLE_LIMIT):
                    data = await upstream.read_all()
                    ctx.status = status
                    ctx.outcome = "completed"
                    conn.send(status, headers, data)
                    return
            except UpstreamError as exc:
                broken = client_failure(pump)
                if broken is not None:
                    # The client's body broke, and so the exchange: not the target's fault.
                    raise broken from None
                self.targets.failed(backend, target, exc.message)
                raise _Failed(_upstream_failed(exc), failure_outcome(exc)) from None
            ctx.status = status
            await _relay(ctx, conn, upstream, status, headers)
        finally:
            if pump is not None and not pump.done():
                pump.cancel()
            if upstream is not None and not upstream.done:
                upstream.abort()

    async def _exchange(
        self, target: RestTarget, head: bytes, body: BodySource, method: str
    ) -> tuple[UpstreamConnection, asyncio.Task[BaseException | None] | None]:
        return await exchange(self.targets.upstream_pool(target), head, body, method)

    # -- protocol upgrades -----------------------------------------------------------------

    async def _switch(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        service: ServiceRuntime,
        backend: RestBackend,
    ) -> None:
        request = ctx.request
        headers = _forwarded_headers(ctx, service, backend)
        headers += [(b"connection", b"upgrade"), (b"upgrade", request.header(b"upgrade") or b"")]
        offered = request.header(_SUBPROTOCOLS)
        protocols = without_key_protocol(offered) if offered is not None else None
        if protocols is not None:
            headers.append((_SUBPROTOCOLS, protocols))
        path = backend.upstream_path(service.prefix, request.path)
        tried: list[str] = []
        try:
            while True:
                target = self.targets.pick(backend, request, tried)
                if target is None:
                    send_error(ctx, conn, _NO_TARGET)
                    return
                tried.append(target.name)
                ctx.attempts = len(tried)
                head = _request_head(request.method, target, path, request.query, headers, None)
                try:
                    context = self.targets.upstream_pool(target).ssl_context
                    end, answer = await handshake(target.origin, context, target.timeouts, head)
                    break
                except UpstreamError as exc:
                    self.targets.failed(backend, target, exc.message)
                    if len(tried) <= backend.retries.attempts:
                        continue
                    ctx.outcome = failure_outcome(exc)
                    send_error(ctx, conn, _upstream_failed(exc))
                    return
            self.targets.succeeded(backend, target)
            kept = [(n, v) for n, v in answer.headers if n not in _SWITCH_DROPPED]
            kept = backend.response_rules.apply(kept)
            ctx.status = answer.status
            ctx.outcome = "completed"
            if answer.status != 101:
                end.close()
                conn.send(answer.status, kept, answer.body)
                return
            tunnel = Tunnel(conn, end, target.timeouts.idle_s, self.deadlines)
            lines = [STATUS_LINES[101]]
            lines.extend(b"%s: %s\r\n" % (name, value) for name, value in kept)
            taken = key_protocol_taken(request.header(_SUBPROTOCOLS), kept)
            if taken is not None:
                lines.append(b"sec-websocket-protocol: %s\r\n" % taken)
            lines.append(b"x-request-id: %s\r\n\r\n" % request.request_id)
            tunnel.join(b"".join(lines))
            try:
                await tunnel.closed
            finally:
                end.close()
        finally:
            finish(ctx)


_NO_TARGET = GatewayError(503, "No target of this service is available.", code="no_target")


def _upstream_failed(exc: UpstreamError) -> GatewayError:
    return GatewayError(
        exc.status,
        f"The upstream of this service failed: {exc.message}.",
        code=f"upstream_{exc.kind}",
    )


async def _relay(
    ctx: RequestContext,
    conn: HttpConnection,
    upstream: UpstreamConnection,
    status: int,
    headers: list[tuple[bytes, bytes]],
) -> None:
    conn.start_stream(status, headers)
    try:
        while True:
            chunk = await upstream.next_chunk()
            if chunk is None:
                break
            conn.write_chunk(chunk)
            await conn.drain()
    except UpstreamError as exc:
        # Nothing in plain HTTP says "this body failed" once it has begun: leave the
        # framing unfinished, so the client sees a broken response, not a complete one.
        log.warning("a REST upstream broke off mid-answer: %s", exc.message)
        ctx.outcome = failure_outcome(exc)
        conn.abort()
        return
    except ClientGone:
        ctx.outcome = "client_disconnect"
        raise
    ctx.outcome = "completed"
    conn.end_stream()


def _forwarded_headers(
    ctx: RequestContext, service: ServiceRuntime, backend: RestBackend
) -> list[tuple[bytes, bytes]]:
    """The request's headers as they go upstream (without the framing ones)."""
    request = ctx.request
    static = backend.headers
    replaced = {name for name, _ in static}
    headers = [(n, v) for n, v in request.headers if n not in _NOT_FORWARDED and n not in replaced]
    forwarded_for = request.header(b"x-forwarded-for")
    client = request.client_address.encode() if request.client_address else b"unknown"
    headers.append(
        (b"x-forwarded-for", forwarded_for + b", " + client if forwarded_for else client)
    )
    headers.append((b"x-forwarded-prefix", service.prefix.encode()))
    if ctx.trace_parent is not None:
        # The gateway's span replaces the client's as the upstream's parent.
        headers = [(n, v) for n, v in headers if n != b"traceparent"]
        headers.append((b"traceparent", ctx.trace_parent))
    headers.append((b"x-request-id", request.request_id))
    headers.extend(static)
    return backend.request_rules.apply(headers)


def _request_head(
    method: str,
    target: RestTarget,
    path: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: BodySource | None,
) -> bytes:
    upstream_path = (target.origin.base_path + path).encode("latin-1")
    if query:
        upstream_path += b"?" + query
    parts = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), upstream_path, target.host)]
    for name, value in headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    if body is not None:
        length = body.length
        if length is None:
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            parts.append(b"content-length: %d\r\n" % length)
    parts.append(b"\r\n")
    return b"".join(parts)


def _asks_upgrade(ctx: RequestContext) -> bool:
    request = ctx.request
    if not request.header(b"upgrade"):
        return False
    return b"upgrade" in (request.header(b"connection") or b"").lower()


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"Request body too large (limit {limit} bytes).", code="request_too_large"
    )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
