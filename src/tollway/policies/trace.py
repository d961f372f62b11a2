"""`trace`: an OpenTelemetry span per call (see observability/tracing.py). In the chain only
when an OTLP endpoint is configured, so that tracing costs nothing when it is off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, Status, StatusCode

from tollway.observability import tracing
from tollway.policies.base import Policy, Verdict
from tollway.policies.config import PolicyConfig

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext

# The GenAI conventions' operation names, by client API operation.
_OPERATIONS = {
    "chat": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
    "count_tokens": "count_tokens",
}


class TraceConfig(PolicyConfig):
    """No settings: the standard OTEL_* variables configure the exporter."""


class Trace(Policy):
    name = "trace"

    def on_request(self, ctx: RequestContext) -> Verdict:
        request = ctx.request
        route = ctx.route
        api = route.api if route is not None else None
        operation = _OPERATIONS.get(api.operation, api.operation) if api is not None else "http"
        span = tracing.tracer().start_span(
            f"{operation} {request.path}",
            context=tracing.parent_from(request.header(b"traceparent")),
            kind=SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": operation,
                "http.request.method": request.method,
                "url.path": request.path,
                "client.address": request.client_address,
                "tollway.request_id": request.request_id.decode("latin-1"),
            },
        )
        ctx.span = span
        ctx.trace_parent = tracing.traceparent_of(span)
        return None

    def on_done(self, ctx: RequestContext) -> None:
        span = ctx.span
        if span is None:
            return
        usage = ctx.usage or {}
        deployment = ctx.deployment
        provider = deployment.provider if deployment is not None else None
        if ctx.model is not None:
            span.update_name(f"{span.name.split(' ')[0]} {ctx.model}")
        span.set_attributes(
            tracing.attributes(
                {
                    "gen_ai.request.model": ctx.model,
                    "gen_ai.response.model": (deployment.model or ctx.model)
                    if deployment is not None
                    else None,
                    "gen_ai.provider.name": provider.kind.name if provider is not None else None,
                    "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
                    "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
                    "server.address": provider.origin.host if provider is not None else None,
                    "http.response.status_code": ctx.status or None,
                    "tollway.outcome": ctx.outcome,
                    "tollway.cost_usd": float(ctx.cost) if ctx.cost is not None else None,
                    "tollway.app": ctx.key.app.name
                    if ctx.key is not None and ctx.key.app is not None
                    else None,
                    "tollway.service": ctx.service.name if ctx.service is not None else None,
                    "error.type": ctx.error_code
                    if ctx.status >= 400 or ctx.outcome not in ("completed", "")
                    else None,
                }
            )
        )
        if ctx.status >= 500 or ctx.outcome in ("upstream_error", "timeout", "error"):
            span.set_status(Status(StatusCode.ERROR, ctx.error_code or ctx.outcome))
        span.end()
