"""Answering a call and closing its account: errors in the client's API format, policy
verdicts, and the done phase that runs once the answer is out (or the call ended otherwise)."""

from __future__ import annotations

import time

from tollway.config.snapshot import ProviderRuntime
from tollway.errors import GatewayError
from tollway.llm.produced import Delivered, counted_usage
from tollway.policies.base import Answer, Verdict
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.upstream import UpstreamError


def send_error(
    ctx: RequestContext,
    conn: HttpConnection,
    error: GatewayError,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Write a gateway error in the format of the API the client called."""
    route = ctx.route
    api = route.api if route is not None else None
    body = api.error_body(error) if api is not None else error.body()
    ctx.status = error.status
    ctx.error_code = error.code
    conn.send_json(error.status, body, [*error.headers, *(headers or ())])


def send_verdict(ctx: RequestContext, conn: HttpConnection, verdict: Verdict) -> None:
    if isinstance(verdict, Answer):
        ctx.status = verdict.status
        conn.send(verdict.status, list(verdict.headers), verdict.body)
    elif verdict is not None:
        send_error(ctx, conn, verdict)


def refuse(ctx: RequestContext, conn: HttpConnection, verdict: Verdict) -> None:
    """Answer a call the gateway stops before any upstream is asked."""
    send_verdict(ctx, conn, verdict)
    finish(ctx, "refused")


def finish(ctx: RequestContext, outcome: str = "") -> None:
    """Close the call's account once: record how it ended and run the done phase."""
    if ctx.finished_at:
        return
    ctx.finished_at = time.monotonic()
    if outcome:
        ctx.outcome = outcome
    elif not ctx.outcome:
        ctx.outcome = "client_disconnect"
    route = ctx.route
    if route is not None and route.pipeline.done_phase:
        if ctx.outcome != "completed" or ctx.usage is None:
            _count_missing_usage(ctx)
        _price(ctx)
        route.pipeline.done(ctx)
    # The handler's steps refer to the call: dropped here, they leave no cycle behind.
    ctx.before_answer = None
    hook = ctx.on_finish
    if hook is not None:
        ctx.on_finish = None
        hook(ctx)


def _count_missing_usage(ctx: RequestContext) -> None:
    """Usage the provider did not report, counted from what was produced (llm/produced.py):
    a stream cut short (whatever was reported before the cut is kept), or an answer without
    usage. Nothing is counted for a call that produced nothing."""
    deployment = ctx.deployment
    route = ctx.route
    if deployment is None or route is None or route.api is None:
        return
    if not route.api.counts_tokens:
        return  # media calls: usage in units their answer or request gives, or none
    answer: bytes | Delivered
    if ctx.delivered is not None:
        if not ctx.delivered.total and ctx.usage is None:
            return
        answer = ctx.delivered
    else:
        body = ctx.response_body
        if ctx.usage is not None or ctx.outcome != "completed" or not isinstance(body, bytes):
            return
        answer = body
    api = route.api
    ctx.usage = counted_usage(
        api.family,
        deployment.model or ctx.model or "",
        ctx.request.body,
        api.canonical,
        answer,
        ctx.usage,
    )


def _price(ctx: RequestContext) -> None:
    """The call's cost from the catalog: only what the usage reports was produced, so a
    stream cut short costs what it delivered, and a streamed call what the same call
    unstreamed would."""
    deployment = ctx.deployment
    usage = ctx.usage
    if deployment is not None and usage is not None and deployment.info is not None:
        ctx.cost = deployment.info.cost(usage)


def upstream_failure(provider: ProviderRuntime, exc: UpstreamError) -> GatewayError:
    return GatewayError(
        exc.status,
        f"Upstream provider '{provider.name}' failed: {exc.message}.",
        code=f"upstream_{exc.kind}",
    )


def failure_outcome(exc: UpstreamError) -> str:
    return "timeout" if exc.kind == "timeout" else "upstream_error"


def served_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    """Which deployment served the call, and after how many attempts; and the headers
    policies added (a rate limit's state)."""
    deployment = ctx.deployment
    if deployment is None:
        return list(ctx.answer_headers)
    return [
        (b"x-tollway-deployment", deployment.label.encode("latin-1", "replace")),
        (b"x-tollway-attempts", b"%d" % ctx.attempts),
        *ctx.answer_headers,
    ]
