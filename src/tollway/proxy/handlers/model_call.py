"""The one model-call handler: every model API (OpenAI's chat completions, completions,
embeddings and Responses; Anthropic's Messages and count_tokens) on every provider.

A call goes: intake (the client API reads model and stream from the body, without building the
rest) -> the pipeline's body phase -> the model's route -> the plan of attempts (the group's
deployments in its strategy's order, then its fallbacks') -> each attempt native (the provider
speaks the client's API: the bytes go through, the model name spliced in when the deployment
renames it) or translated (client API -> canonical -> provider adapter and back), retried on
the next while it fails before any byte reached the client (proxy/handlers/attempts.py) ->
the answer, with the deployment that served it, its usage, and the done phase.

The request phase runs synchronously; only a streamed call, or one that must open a new
upstream connection, becomes a task.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import orjson

from tollway.config.snapshot import Deployment, ModelRoute
from tollway.errors import GatewayError
from tollway.llm import tokens
from tollway.llm.client_apis import ClientApi, Intake
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import STRATEGIES, Attempt, Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.attempts import ModelCall
from tollway.proxy.handlers.form_upload import take_form
from tollway.proxy.handlers.translated import count_locally
from tollway.proxy.replies import finish, refuse
from tollway.proxy.request_body import StreamedRequest
from tollway.proxy.upstream import Upstreams

if TYPE_CHECKING:
    from tollway.proxy.handlers.prompt_api import PromptApis


class ModelCalls:
    """The worker's model-call handler: its upstream pools and balancer state."""

    __slots__ = ("balancers", "prompts", "upstreams")

    def __init__(self, upstreams: Upstreams, balancers: Balancers) -> None:
        self.upstreams = upstreams
        self.balancers = balancers
        # The prompt APIs, which chat calls reach as the model `prompt:NAME`.
        self.prompts: PromptApis | None = None

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None and route.api is not None
        api = route.api
        if api.form and isinstance(ctx.request, StreamedRequest):
            return take_form(self, ctx, conn, api)  # an upload, taken as it arrives
        return self.take(ctx, conn, api)

    def take(
        self, ctx: RequestContext, conn: HttpConnection, api: ClientApi
    ) -> Awaitable[None] | None:
        """The call, its body read whole."""
        route = ctx.route
        assert route is not None
        try:
            if api.form:
                intake = api.intake_form(ctx.request.body, ctx.request.header(b"content-type"))
            else:
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
        if intake.model.startswith("prompt:") and self.prompts is not None:
            if api.operation == "chat" and api.family == "openai":
                return self.prompts.chat(ctx, conn, intake)
            refuse(ctx, conn, api.no_such_model(intake.model))
            return None
        model_route = ctx.config.route(intake.model)
        service = route.service
        if model_route is None or (service is not None and intake.model not in service.models):
            refuse(ctx, conn, api.no_such_model(intake.model))
            return None
        try:
            attempts = plan(self.balancers, ctx, model_route, intake)
        except GatewayError as error:
            refuse(ctx, conn, error)
            return None
        first = attempts[0].deployment
        if (
            api.operation == "count_tokens"
            and not first.provider.serves_natively(api)
            and first.provider.kind.token_counting is None
        ):
            try:
                canonical = api.canonical(orjson.loads(ctx.request.body))
            except GatewayError as error:
                refuse(ctx, conn, error)
                return None
            ctx.deployment = first
            return count_locally(ctx, conn, api, canonical, first.model or intake.model)
        return ModelCall(self.upstreams, self.balancers, ctx, conn, api, intake, attempts).begin()

    def attempts(self, ctx: RequestContext, route: ModelRoute, intake: Intake) -> list[Attempt]:
        return plan(self.balancers, ctx, route, intake)


def plan(
    balancers: Balancers, ctx: RequestContext, route: ModelRoute, intake: Intake
) -> list[Attempt]:
    """The attempts of a call, in order: the group's deployments as its strategy orders them
    (each tried again while attempts remain), then each fallback model's in turn. A request
    too long for a deployment's context window skips it for the context-window fallback."""
    fixed = balancers.fixed_plan(route)
    if fixed is not None and ctx.sticky_provider is None:
        return fixed
    routing = route.routing
    now = time.monotonic()
    strategy = None
    pinned = None
    if routing.client_choice:
        asked = ctx.request.header(b"x-tollway-strategy")
        if asked is not None:
            strategy = asked.decode("latin-1")
            if strategy not in STRATEGIES:
                raise GatewayError(
                    400,
                    f"x-tollway-strategy: {strategy!r} is none of {', '.join(STRATEGIES)}.",
                    code="invalid_value",
                )
        label = ctx.request.header(b"x-tollway-deployment")
        if label is not None:
            pinned = label.decode("latin-1")
    estimated = 0
    if strategy == "cost" or routing.strategy == "cost" or routing.context_window_fallback:
        estimated = _estimated_tokens(ctx, intake)
    ordered = balancers.order(route, now, strategy, estimated)
    if pinned is not None:
        ordered = [d for d in ordered if d.label == pinned]
        if not ordered:
            raise GatewayError(
                400,
                f"x-tollway-deployment: `{pinned}` is not a deployment of `{route.name}`.",
                code="invalid_value",
            )
    sticky = ctx.sticky_provider
    if sticky is not None:
        ordered = [d for d in ordered if d.provider.name == sticky]
    if routing.context_window_fallback and estimated:
        fitting = [d for d in ordered if d.info is None or estimated <= d.info.context_window]
        ordered = fitting
    attempts = [Attempt(d, route) for d in _repeat(ordered, 1 + routing.retries)]
    chain = list(routing.fallbacks)
    if routing.context_window_fallback and not ordered:
        chain.insert(0, routing.context_window_fallback)
    seen = {route.name}
    for name in chain:
        fallback = ctx.config.models.get(name)
        if fallback is None or name in seen:
            continue
        seen.add(name)
        group = balancers.order(fallback, now, None, estimated)
        if sticky is not None:
            group = [d for d in group if d.provider.name == sticky]
        attempts.extend(Attempt(d, fallback) for d in _repeat(group, 1 + fallback.routing.retries))
    if not attempts and sticky is not None:
        raise GatewayError(
            400,
            f"The previous response is kept by provider `{sticky}`, which serves no "
            f"deployment of `{route.name}`: continue it on a model that provider serves.",
            param="previous_response_id",
            code="invalid_value",
        )
    if not attempts:
        raise GatewayError(
            400,
            f"The request is too long for every deployment of `{route.name}` "
            f"({estimated} tokens counted).",
            code="context_length_exceeded",
        )
    return attempts


def _repeat(items: list[Deployment], count: int) -> list[Deployment]:
    """`count` attempts over `items`, in order, starting over when they run out."""
    if not items:
        return []
    return [items[i % len(items)] for i in range(max(count, 1))]


def _estimated_tokens(ctx: RequestContext, intake: Intake) -> int:
    """The request's input tokens, counted with the model's encoding (or its approximation)."""
    try:
        body = orjson.loads(ctx.request.body)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(body, dict):
        return 0
    counter = tokens.counter_for(intake.model)
    if "messages" in body:
        return counter.chat(body)
    text = body.get("input") or body.get("prompt") or ""
    return counter.text(text if isinstance(text, str) else orjson.dumps(text).decode())
