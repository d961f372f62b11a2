"""One model call through its attempts: the deployments the balancer ordered, then the
fallback models', until one answers or the call runs out of attempts.

A failure is retried on the next attempt when nothing has reached the client yet and it could
go better elsewhere: the upstream unreachable or broken off, a timeout, 408, 429 or 5xx. A 429
or 503 with Retry-After holds its deployment back until then (up to a cap). The same
deployment is tried again only after an exponential backoff with jitter; another one at once.
Each group's retries are bounded by its retry budget, so a failing provider is not hammered.
A request refused on content policy, or too long for the model's context window, goes to the
configured fallback model. Nothing is retried once a byte of the answer has gone out: a stream
that fails midway ends with its error event, as before.

Non-streamed calls stay callback-driven (no task) unless a backoff has to be waited out;
streamed calls run as one task over their attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tollway.config.snapshot import ProviderRuntime
from tollway.config.transport import head_prefix
from tollway.errors import GatewayError
from tollway.llm.client_apis import ClientApi, Intake
from tollway.llm.responses_output import REF_KEY
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Attempt, Balancers, DeploymentState
from tollway.proxy.connection import HttpConnection
from tollway.proxy.exchange import Exchange, open_stream
from tollway.proxy.handlers.calls import (
    HeldAnswer,
    answer_native,
    complete_head,
    content_type,
    rename_form_model,
    splice_model,
    with_usage_requested,
)
from tollway.proxy.handlers.translated import (
    TRANSLATIONS,
    Translation,
    answer_translated,
    provider_error,
    unavailable,
)
from tollway.proxy.replies import (
    failure_outcome,
    finish,
    send_error,
    send_verdict,
    served_headers,
    upstream_failure,
)
from tollway.proxy.streaming import relay_native, relay_raw, relay_translated
from tollway.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool

if TYPE_CHECKING:
    from tollway.proxy.upstream import Upstreams

log = logging.getLogger("tollway.proxy")

_SSE = b"text/event-stream"
# Statuses worth another deployment: the upstream, not the request, was the trouble.
_RETRYABLE = frozenset((408, 409, 425, 429, 500, 502, 503, 504))
_CONTENT_POLICY = (b"content_policy", b"content_filter")
_CONTEXT_LENGTH = b"context_length_exceeded"


@dataclass(slots=True)
class Prepared:
    """An attempt's upstream request, ready to send."""

    provider: ProviderRuntime
    pool: UpstreamPool
    head: bytes
    body: bytes
    upstream_model: str
    # Translated calls: how to read the answer back.
    translation: Translation | None = None
    canonical: dict[str, Any] | None = None
    # The client's request as it sent it (answers in some APIs echo it).
    request: dict[str, Any] | None = None


class ModelCall:
    __slots__ = (
        "api",
        "attempt",
        "balancers",
        "canonical",
        "client_request",
        "conn",
        "ctx",
        "deployment_state",
        "exchange",
        "index",
        "intake",
        "plan",
        "releasing",
        "timer",
        "upstreams",
    )

    def __init__(
        self,
        upstreams: Upstreams,
        balancers: Balancers,
        ctx: RequestContext,
        conn: HttpConnection,
        api: ClientApi,
        intake: Intake,
        plan: list[Attempt],
    ) -> None:
        self.upstreams = upstreams
        self.balancers = balancers
        self.ctx = ctx
        self.conn = conn
        self.api = api
        self.intake = intake
        self.plan = plan
        self.index = 0
        self.attempt: Attempt | None = None
        # The balancer's state of the attempt's deployment, from its start to its end.
        self.deployment_state: DeploymentState | None = None
        self.exchange: Exchange | None = None
        self.timer: asyncio.TimerHandle | None = None
        # The request in the canonical form, parsed once for every translated attempt.
        self.canonical: dict[str, Any] | None = None
        self.client_request: dict[str, Any] | None = None
        self.releasing: asyncio.Future[None] | None = None

    def begin(self) -> Awaitable[None] | None:
        self.balancers.earn(self.plan[0].route)
        if self.intake.stream:
            return self._streamed()
        self.conn.attach(self)
        self._next()
        return None

    # -- preparing an attempt ------------------------------------------------------------

    def _prepare(self, attempt: Attempt) -> Prepared:
        """The upstream request for `attempt`; GatewayError when this deployment cannot take
        the call (its provider lacks the endpoint, or refuses a parameter)."""
        deployment = attempt.deployment
        provider = deployment.provider
        api = self.api
        intake = self.intake
        upstream_model = deployment.model_for(attempt.route.name, intake.model)
        # A response the gateway keeps (ctx.response_ref) is made translated everywhere: its
        # answer names the gateway's id, and its output is read for the kept state.
        native = provider.serves(api)
        if native and self.ctx.response_ref is None:
            body = self._native_body(provider, upstream_model)
            prefix = deployment.native_heads.get((api.name, intake.stream))
            if prefix is None:
                # The path names a model the client chose (a '*' route to Azure).
                prefix = head_prefix(
                    b"POST",
                    provider.path(api.endpoint, upstream_model),
                    provider.host,
                    (*provider.headers, *api.head_headers(intake.stream)),
                )
            head = complete_head(prefix, self.ctx, api, len(body))
            return Prepared(provider, self.upstreams.pool(provider), head, body, upstream_model)
        translation = TRANSLATIONS.get(api.operation)
        if translation is None or not translation.available(provider, api):
            raise unavailable(intake.model, provider, api)
        if self.canonical is None:
            self.client_request = orjson.loads(self.ctx.request.body)
            self.canonical = api.canonical(self.client_request)
            if self.ctx.response_ref is not None:  # a stored response: its answer says so
                self.client_request[REF_KEY] = self.ctx.response_ref
        call = translation.call(provider, self.canonical, upstream_model, intake.stream)
        target = translation.target(provider)  # the provider, or its second host
        head = translation.head(
            target,
            call,
            upstream_model,
            self.ctx.request.request_id,
            intake.stream,
            self.ctx.trace_parent,
        )
        return Prepared(
            provider,
            self.upstreams.pool(target),
            head,
            call.body,
            upstream_model,
            translation,
            self.canonical,
            self.client_request,
        )

    def _native_body(self, provider: ProviderRuntime, upstream_model: str) -> bytes:
        intake = self.intake
        ctx = self.ctx
        payload = ctx.request.body
        quirks = provider.kind.quirks
        if quirks.active:
            body = orjson.loads(payload)
            renamed = upstream_model != intake.model
            if renamed:
                body["model"] = upstream_model
            changed = quirks.apply(provider.kind.name, body)
            if changed or renamed:
                payload = orjson.dumps(body)
        elif upstream_model != intake.model:
            if self.api.form:
                payload = rename_form_model(
                    payload, ctx.request.header(b"content-type"), upstream_model
                )
            else:
                payload = splice_model(payload, intake.model, upstream_model)
        if (
            intake.stream
            and not intake.include_usage
            and self.api.operation in ("chat", "completions")
            and ctx.route is not None
            and ctx.route.pipeline.done_phase
        ):
            payload = with_usage_requested(payload)
            ctx.asked_usage = True
        return payload

    def _take(self) -> tuple[Attempt, Prepared] | GatewayError:
        """The next attempt that can be prepared; the last refusal when none can."""
        refusal = None
        while self.index < len(self.plan):
            attempt = self.plan[self.index]
            self.index += 1
            try:
                return attempt, self._prepare(attempt)
            except GatewayError as error:
                refusal = error
        return refusal or GatewayError(503, "No deployment of this model can take the call.")

    def _starting(self, attempt: Attempt) -> None:
        ctx = self.ctx
        now = time.monotonic()
        self.attempt = attempt
        ctx.deployment = attempt.deployment
        ctx.attempts += 1
        ctx.upstream_started_at = now
        self.deployment_state = self.balancers.started(attempt.route, attempt.deployment, now)

    def _ended(self, ok: bool | None) -> None:
        """The attempt is over: a success, a failure, or (None) neither (the upstream was
        busy: a 429 holds the deployment back without counting against its breaker)."""
        attempt = self.attempt
        if attempt is None:
            return
        self.attempt = None
        ctx = self.ctx
        now = time.monotonic()
        usage = ctx.usage or {}
        self.balancers.finished(
            attempt.route,
            attempt.deployment,
            now,
            ok=ok,
            latency=now - ctx.upstream_started_at if ok else 0.0,
            ttfb=ctx.first_byte_at - ctx.upstream_started_at if ok and ctx.first_byte_at else 0.0,
            tokens=int(usage.get("total_tokens") or 0),
            state=self.deployment_state,
        )
        self.deployment_state = None

    # -- deciding after a failure -------------------------------------------------------------

    def _retry_delay(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, failed: bool
    ) -> float | None:
        """None: answer now. Else the seconds to wait before the next attempt (which may be a
        fallback model's, added to the plan here)."""
        attempt = self.attempt
        assert attempt is not None
        routing = attempt.route.routing
        if not failed and status in (400, 403, 422):
            fallback = None
            if routing.content_policy_fallback and any(m in body for m in _CONTENT_POLICY):
                fallback = routing.content_policy_fallback
            elif routing.context_window_fallback and _CONTEXT_LENGTH in body:
                fallback = routing.context_window_fallback
            if fallback is None or not self._insert_fallback(fallback):
                return None
            return 0.0
        if not failed and status not in _RETRYABLE:
            return None
        if self.index >= len(self.plan) or not self.balancers.spend(attempt.route):
            return None
        now = time.monotonic()
        wait = _retry_after(headers)
        if wait is not None:
            if wait > routing.retry_after_cap_s:
                wait = None
            self.balancers.hold(
                attempt.route, attempt.deployment, now + (wait or routing.retry_after_cap_s)
            )
        if self.plan[self.index].deployment is not attempt.deployment:
            return 0.0
        if wait is not None:
            return wait
        tries = sum(1 for a in self.plan[: self.index] if a.deployment is attempt.deployment)
        ceiling = min(routing.max_backoff_s, routing.backoff_s * (2 ** (tries - 1)))
        return self.balancers.random.uniform(0, ceiling)

    def _insert_fallback(self, model: str) -> bool:
        route = self.ctx.config.models.get(model)
        if route is None:
            return False
        now = time.monotonic()
        attempts = [Attempt(d, route) for d in self.balancers.order(route, now)]
        self.plan[self.index : self.index] = attempts[: 1 + route.routing.retries]
        return True

    # -- non-streamed ---------------------------------------------------------------------

    def _next(self) -> None:
        self.timer = None
        taken = self._take()
        if isinstance(taken, GatewayError):
            self.ctx.outcome = "refused" if self.ctx.attempts == 0 else "upstream_error"
            send_error(self.ctx, self.conn, taken, served_headers(self.ctx))
            finish(self.ctx)
            return
        attempt, prepared = taken
        self._starting(attempt)
        exchange = _AttemptExchange(self, prepared)
        self.exchange = exchange
        exchange.start()

    def result(
        self,
        prepared: Prepared,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        # The exchange is over: dropping it breaks the call <-> exchange cycle, so that the
        # call, its context and the request's body are freed by reference counting when the
        # answer is sent, not by a later cyclic GC pass (by which time a busy worker has
        # promoted them, large bodies included, to an older generation).
        self.exchange = None
        ctx = self.ctx
        conn = self.conn
        try:
            failed = error is not None
            delay = (
                None
                if conn.closed or (not failed and status < 400)
                else self._retry_delay(status, headers, body, failed)
            )
            if delay is not None:
                self._ended(ok=None if status == 429 else False)
                if delay > 0:
                    self.timer = asyncio.get_running_loop().call_later(delay, self._next)
                else:
                    self._next()
                return
            self._ended(ok=not failed and status < 500)
            if error is not None:
                ctx.outcome = failure_outcome(error)
                send_error(
                    ctx, conn, upstream_failure(prepared.provider, error), served_headers(ctx)
                )
                finish(ctx)
                return
            ctx.status = status
            route = ctx.route
            if route is not None and route.pipeline.response_phase:
                verdict = route.pipeline.response(ctx)
                if verdict is not None:
                    ctx.outcome = "refused"
                    send_verdict(ctx, conn, verdict)
                    finish(ctx)
                    return
            if ctx.before_answer is not None:
                self._answer_held(prepared, status, headers, body, ctx.before_answer)
                return
            if prepared.translation is None:
                answer_native(ctx, conn, self.api, prepared.provider, status, headers, body)
            else:
                assert prepared.translation is not None and prepared.canonical is not None
                answer_translated(
                    ctx,
                    conn,
                    self.api,
                    prepared.provider,
                    prepared.translation,
                    prepared.upstream_model,
                    prepared.canonical,
                    status,
                    body,
                    prepared.request,
                )
            finish(ctx)
        except Exception:
            # Called from the upstream's protocol callback: nothing above would catch this.
            log.exception("answering a %s call failed", self.api.name)
            ctx.outcome = "error"
            conn.abort()
            finish(ctx)

    def _answer_held(
        self,
        prepared: Prepared,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        before: Callable[[], Awaitable[None]],
    ) -> None:
        """An answer that goes out once `before` has been written (the call's kept state, or
        whose its response id is): made now, held, sent from a task."""
        held = HeldAnswer()
        if prepared.translation is None:
            provider = prepared.provider
            answer_native(self.ctx, held, self.api, provider, status, headers, body)  # type: ignore[arg-type]
        else:
            assert prepared.canonical is not None
            answer_translated(
                self.ctx,
                held,  # type: ignore[arg-type]
                self.api,
                prepared.provider,
                prepared.translation,
                prepared.upstream_model,
                prepared.canonical,
                status,
                body,
                prepared.request,
            )
        # Kept here: a task nothing refers to may be collected before it runs.
        self.releasing = asyncio.ensure_future(self._release(held, before))

    async def _release(self, held: HeldAnswer, before: Callable[[], Awaitable[None]]) -> None:
        ctx = self.ctx
        try:
            await before()
        except Exception:
            log.exception("a %s call's state could not be written", self.api.name)
        if self.conn.closed:
            finish(ctx, "client_disconnect")
            return
        if held.sent is not None:
            self.conn.send(*held.sent)
        finish(ctx)

    def cancel(self) -> None:
        """The client went away: abandon the attempt in progress or the wait for the next."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.exchange is not None:
            self.exchange.cancel()
        self._ended(ok=True)
        finish(self.ctx, "client_disconnect")

    # -- streamed -------------------------------------------------------------------------

    async def _streamed(self) -> None:
        ctx = self.ctx
        conn = self.conn
        try:
            while True:
                taken = self._take()
                if isinstance(taken, GatewayError):
                    ctx.outcome = "refused" if ctx.attempts == 0 else "upstream_error"
                    send_error(ctx, conn, taken, served_headers(ctx))
                    return
                attempt, prepared = taken
                self._starting(attempt)
                try:
                    upstream = await open_stream(prepared.pool, prepared.head, prepared.body)
                except UpstreamError as exc:
                    delay = self._retry_delay(0, [], b"", failed=True)
                    if delay is not None:
                        self._ended(ok=False)
                        await asyncio.sleep(delay)
                        continue
                    self._ended(ok=False)
                    ctx.outcome = failure_outcome(exc)
                    send_error(
                        ctx, conn, upstream_failure(prepared.provider, exc), served_headers(ctx)
                    )
                    return
                if await self._answer_stream(prepared, upstream):
                    return
        finally:
            self._ended(ok=ctx.outcome in ("completed", "client_disconnect", ""))
            finish(ctx)

    async def _answer_stream(self, prepared: Prepared, upstream: UpstreamConnection) -> bool:
        """Answer from an opened stream; False when the attempt failed and another follows."""
        ctx = self.ctx
        conn = self.conn
        status, headers = upstream.status, upstream.headers
        ctx.status = status
        streaming = status < 300 and (
            prepared.translation is not None
            or self.api.raw_answer
            or content_type(headers).startswith(_SSE)
        )
        if not streaming:
            try:
                data = await upstream.read_all()
            except UpstreamError as exc:
                data, status = b"", 0
                error: UpstreamError | None = exc
            else:
                error = None
            delay = self._retry_delay(status, headers, data, failed=error is not None)
            if delay is not None:
                self._ended(ok=None if status == 429 else False)
                await asyncio.sleep(delay)
                return False
            if error is not None:
                ctx.outcome = failure_outcome(error)
                send_error(
                    ctx, conn, upstream_failure(prepared.provider, error), served_headers(ctx)
                )
            elif prepared.translation is None:
                answer_native(ctx, conn, self.api, prepared.provider, status, headers, data)
            else:
                ctx.outcome = "upstream_error"
                send_error(
                    ctx, conn, provider_error(prepared.provider, status, data), served_headers(ctx)
                )
            return True
        route = ctx.route
        if route is not None and route.pipeline.response_phase:
            verdict = route.pipeline.response(ctx)
            if verdict is not None:
                upstream.abort()
                ctx.outcome = "refused"
                send_verdict(ctx, conn, verdict)
                return True
        if prepared.translation is None:
            if self.api.raw_answer and not content_type(headers).startswith(_SSE):
                await relay_raw(ctx, conn, upstream, self.api, served_headers(ctx))
            else:
                await relay_native(ctx, conn, upstream, self.api, served_headers(ctx))
        else:
            adapter = prepared.provider.kind.adapter
            await relay_translated(
                ctx,
                conn,
                upstream,
                prepared.provider,
                adapter.chat_stream(prepared.upstream_model, prepared.canonical),
                self.api.encoder(
                    prepared.upstream_model, self.intake.include_usage, prepared.request
                ),
                served_headers(ctx),
                ctx.before_answer,
            )
        return True


class _AttemptExchange(Exchange):
    __slots__ = ("call", "prepared")

    def __init__(self, call: ModelCall, prepared: Prepared) -> None:
        super().__init__(prepared.pool, prepared.head, prepared.body)
        self.call = call
        self.prepared = prepared

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        self.call.result(self.prepared, status, headers, body, error)


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    for name, value in headers:
        if name == b"retry-after-ms":
            try:
                return float(value) / 1000
            except ValueError:
                return None
        if name == b"retry-after":
            try:
                return float(value)
            except ValueError:
                return None  # an HTTP date: not waited for
    return None
