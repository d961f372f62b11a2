"""REST services: any method under a service's route prefix, forwarded to one of its targets.

The request goes out as it came, but for what only the hop to the gateway meant: hop-by-hop
headers, the `host`, and the credentials the caller presented to the gateway (its key is the
gateway's business, never the upstream's). The service's static headers and `x-forwarded-*`
are added. The answer comes back as it is: small bodies whole, others streamed as they arrive
with backpressure both ways; a body cut short by the upstream is cut short to the client too
(the chunked framing is left unfinished), never passed off as complete.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from tollway.config.snapshot import RestTarget, ServiceRuntime
from tollway.config.transport import head_prefix
from tollway.errors import GatewayError
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.exchange import open_stream
from tollway.proxy.http import ClientGone
from tollway.proxy.replies import failure_outcome, finish, send_error
from tollway.proxy.upstream import UpstreamConnection, UpstreamError, Upstreams

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
# The client's credentials for the gateway.
_GATEWAY_CREDENTIALS = frozenset((b"authorization", b"x-api-key", b"api-key"))
_NOT_FORWARDED = _HOP_BY_HOP | _GATEWAY_CREDENTIALS
_ANSWER_DROPPED = _HOP_BY_HOP | frozenset((b"x-request-id",))
# Answers up to this size with a known length are read whole and sent in one write.
_WHOLE_LIMIT = 1024 * 1024


class RestProxy:
    __slots__ = ("balancers", "upstreams")

    def __init__(self, upstreams: Upstreams, balancers: Balancers) -> None:
        self.upstreams = upstreams
        self.balancers = balancers

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None and route.service is not None
        service = route.service
        target = self.balancers.pick_target(service)
        head = _request_head(ctx, service, target)
        bodyless = ctx.request.method == "HEAD"
        return self._forward(ctx, conn, target, head, bodyless)

    async def _forward(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        target: RestTarget,
        head: bytes,
        bodyless: bool,
    ) -> None:
        try:
            try:
                upstream = await open_stream(
                    self.upstreams.pool(target), head, ctx.request.body, bodyless
                )
                status = upstream.status
                ctx.status = status
                headers = [(n, v) for n, v in upstream.headers if n not in _ANSWER_DROPPED]
                length = _content_length(upstream.headers)
                if upstream.done or (length is not None and length <= _WHOLE_LIMIT):
                    body = await upstream.read_all()
                    ctx.outcome = "completed"
                    conn.send(status, headers, body)
                    return
            except UpstreamError as exc:
                ctx.outcome = failure_outcome(exc)
                send_error(
                    ctx,
                    conn,
                    GatewayError(
                        exc.status,
                        f"The upstream of this service failed: {exc.message}.",
                        code=f"upstream_{exc.kind}",
                    ),
                )
                return
            await _relay(ctx, conn, upstream, status, headers)
        finally:
            finish(ctx)


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
    finally:
        if not upstream.done:
            upstream.abort()
    ctx.outcome = "completed"
    conn.end_stream()


def _request_head(ctx: RequestContext, service: ServiceRuntime, target: RestTarget) -> bytes:
    request = ctx.request
    path = request.path
    if service.strip_prefix:
        path = path[len(service.prefix) :] or "/"
    upstream_path = (target.origin.base_path + path).encode("latin-1")
    if request.query:
        upstream_path += b"?" + request.query
    headers = [(n, v) for n, v in request.headers if n not in _NOT_FORWARDED]
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
    headers.extend(service.headers)
    prefix = head_prefix(request.method.encode(), upstream_path, target.host, tuple(headers))
    return prefix + b"content-length: %d\r\n\r\n" % len(request.body)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
