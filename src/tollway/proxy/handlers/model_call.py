"""The one model-call handler: every model API (OpenAI's chat completions, completions,
embeddings and Responses; Anthropic's Messages and count_tokens) on every provider.

A call goes: intake (the client API reads model and stream from the body, without building the
rest) -> the pipeline's body phase -> the model's route -> the deployment to try -> native (the
provider speaks the client's API: the bytes go through, the model name spliced in when the
deployment renames it) or translated (client API -> canonical -> provider adapter and back) ->
one upstream exchange, whole or streamed -> the answer, its usage, and the done phase.

The request phase runs synchronously; only a streamed call, or one that must open a new
upstream connection, becomes a task.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.config.snapshot import Deployment, ProviderRuntime
from tollway.config.transport import head_prefix
from tollway.errors import GatewayError
from tollway.llm.client_apis import ClientApi, Intake
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.calls import NativeCall, native_stream
from tollway.proxy.handlers.translated import (
    TRANSLATIONS,
    TranslatedCall,
    count_locally,
    translated_stream,
    unavailable,
)
from tollway.proxy.replies import finish, refuse
from tollway.proxy.upstream import Upstreams

log = logging.getLogger("tollway.proxy")

_JSON = b"application/json"
_SSE = b"text/event-stream"


class ModelCalls:
    """The worker's model-call handler: its upstream pools and balancer state."""

    __slots__ = ("balancers", "upstreams")

    def __init__(self, upstreams: Upstreams, balancers: Balancers) -> None:
        self.upstreams = upstreams
        self.balancers = balancers

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None and route.api is not None
        api = route.api
        try:
            intake = api.intake(ctx.request.body)
        except GatewayError as error:
            refuse(ctx, conn, error)
            return None
        ctx.model = intake.model
        ctx.stream = intake.stream
        pipeline = route.pipeline
        if pipeline.body_phase:
            verdict = pipeline.body(ctx)
            if verdict is not None:
                if isinstance(verdict, Pending):
                    return self._after(ctx, conn, api, intake, verdict)
                refuse(ctx, conn, verdict)
                return None
        return self._call(ctx, conn, api, intake)

    async def _after(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        api: ClientApi,
        intake: Intake,
        pending: Pending,
    ) -> None:
        """The body phase waited on a policy (a counter shared across nodes): go on."""
        try:
            verdict = await pending.waiter
        except BaseException:
            finish(ctx, "client_disconnect")
            raise
        if verdict is not None:
            refuse(ctx, conn, verdict)
            return
        work = self._call(ctx, conn, api, intake)
        if work is not None:
            await work

    def _call(
        self, ctx: RequestContext, conn: HttpConnection, api: ClientApi, intake: Intake
    ) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None
        model_route = ctx.config.route(intake.model)
        service = route.service
        if model_route is None or (service is not None and intake.model not in service.models):
            refuse(ctx, conn, api.no_such_model(intake.model))
            return None
        deployment = self.balancers.attempts(model_route)[0]
        ctx.deployment = deployment
        ctx.attempts = 1
        if deployment.provider.serves_natively(api):
            return self._native(ctx, conn, api, intake, deployment)
        return self._translated(ctx, conn, api, intake, deployment)

    # -- the provider speaks the client's API ---------------------------------------------

    def _native(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        api: ClientApi,
        intake: Intake,
        deployment: Deployment,
    ) -> Awaitable[None] | None:
        provider = deployment.provider
        if not provider.has_endpoint(api):
            refuse(ctx, conn, no_endpoint(intake.model, provider, api))
            return None
        upstream_model = deployment.model or intake.model
        payload = ctx.request.body
        quirks = provider.kind.quirks
        if quirks.active:
            body = orjson.loads(payload)
            renamed = upstream_model != intake.model
            if renamed:
                body["model"] = upstream_model
            try:
                changed = quirks.apply(provider.kind.name, body)
            except GatewayError as error:
                refuse(ctx, conn, error)
                return None
            if changed or renamed:
                payload = orjson.dumps(body)
        elif upstream_model != intake.model:
            payload = splice_model(payload, intake.model, upstream_model)
        if (
            intake.stream
            and not intake.include_usage
            and api.operation in ("chat", "completions")
            and ctx.route is not None
            and ctx.route.pipeline.done_phase
        ):
            payload = with_usage_requested(payload)
            ctx.asked_usage = True
        prefix = deployment.native_heads.get((api.name, intake.stream))
        if prefix is None:
            # The path names a model the client chose (a '*' route to Azure): built per call.
            accept = _SSE if intake.stream else _JSON
            prefix = head_prefix(
                b"POST",
                provider.path(api.endpoint, upstream_model),
                provider.host,
                (*provider.headers, (b"content-type", _JSON), (b"accept", accept)),
            )
        head = _complete_head(prefix, ctx, api, len(payload))
        pool = self.upstreams.pool(provider)
        ctx.upstream_started_at = time.monotonic()
        if intake.stream:
            return native_stream(ctx, conn, api, provider, pool, head, payload)
        call = NativeCall(pool, head, payload, ctx, conn, api, provider)
        conn.attach(call)
        call.start()
        return None

    # -- through the canonical form ---------------------------------------------------------

    def _translated(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        api: ClientApi,
        intake: Intake,
        deployment: Deployment,
    ) -> Awaitable[None] | None:
        provider = deployment.provider
        translation = TRANSLATIONS.get(api.operation)
        counts_locally = api.operation == "count_tokens" and provider.kind.token_counting is None
        if translation is None or not (counts_locally or translation.available(provider)):
            refuse(ctx, conn, unavailable(intake.model, provider, api))
            return None
        upstream_model = deployment.model or intake.model
        try:
            canonical = api.canonical(orjson.loads(ctx.request.body))
            if counts_locally:
                return count_locally(ctx, conn, api, canonical, upstream_model)
            call = translation.call(provider, canonical, upstream_model, intake.stream)
        except GatewayError as error:
            refuse(ctx, conn, error)
            return None
        head = translation.head(
            provider, call, upstream_model, ctx.request.request_id, intake.stream, ctx.trace_parent
        )
        pool = self.upstreams.pool(provider)
        ctx.upstream_started_at = time.monotonic()
        if intake.stream:
            adapter = provider.kind.adapter
            return translated_stream(
                ctx,
                conn,
                provider,
                pool,
                head,
                call.body,
                adapter.chat_stream(upstream_model, canonical),
                api.encoder(upstream_model, intake.include_usage),
            )
        exchange = TranslatedCall(
            pool, head, call.body, ctx, conn, api, provider, translation, upstream_model, canonical
        )
        conn.attach(exchange)
        exchange.start()
        return None


def _complete_head(prefix: bytes, ctx: RequestContext, api: ClientApi, length: int) -> bytes:
    """A native call's head: the deployment's prefix, the headers the client chose for
    itself, the request id and the length."""
    request = ctx.request
    parts = [prefix]
    for name in api.forwarded_headers:
        value = request.header(name)
        if value is not None:
            parts.append(b"%s: %s\r\n" % (name, value))
    if ctx.trace_parent is not None:
        parts.append(b"traceparent: %s\r\n" % ctx.trace_parent)
    parts.append(b"x-request-id: %s\r\ncontent-length: %d\r\n\r\n" % (request.request_id, length))
    return b"".join(parts)


def no_endpoint(model: str, provider: ProviderRuntime, api: ClientApi) -> GatewayError:
    return GatewayError(
        400,
        f"The model `{model}` is served by a {provider.kind.name} provider, "
        f"which has no {api.endpoint} endpoint.",
        param="model",
        code="unsupported_endpoint",
    )


def with_usage_requested(body: bytes) -> bytes:
    """`body` asking for the stream's usage (`stream_options.include_usage`): metering needs
    the upstream's own count. The usage chunk is then kept from the client (relay_native)."""
    if b'"stream_options"' not in body:
        start = body.index(b"{")
        return body[: start + 1] + b'"stream_options":{"include_usage":true},' + body[start + 1 :]
    parsed: dict[str, Any] = orjson.loads(body)
    options = parsed.get("stream_options")
    parsed["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return orjson.dumps(parsed)


# A JSON object key "model" and its string value, where the opening quote is not escaped.
_MODEL_KEY = rb'(?<!\\)"model"\s*:\s*'


def splice_model(body: bytes, model: str, upstream_model: str) -> bytes:
    """`body` with its top-level model renamed, without re-serialising the rest.

    The body was validated as a JSON object whose `model` is `model`. A `"model": "<model>"`
    pair that occurs exactly once must be that one; if the same pair also occurs deeper
    (a tool's schema, say), the body is parsed and written again instead.
    """
    value = orjson.dumps(model)
    found = list(re.finditer(_MODEL_KEY + re.escape(value), body))
    if len(found) == 1:
        start, end = found[0].span()
        key = body[start : end - len(value)]
        return body[:start] + key + orjson.dumps(upstream_model) + body[end:]
    parsed: dict[str, Any] = orjson.loads(body)
    parsed["model"] = upstream_model
    return orjson.dumps(parsed)
