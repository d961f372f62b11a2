"""`rate_limit`: requests per minute, tokens per minute and concurrent requests, per key, app,
team, service or model, with a burst allowance; exact across a node's workers and, with Redis,
across nodes (tollway.limits).

Each limit is a token bucket: it holds `burst` requests (default: the per-minute limit) and
refills at the per-minute rate, so a quiet client may send a burst at once and a busy one gets
the steady rate. Token limits reserve an estimate before the call (tollway.limits.estimate)
and settle it with the usage reported. Concurrency is held until the call ends, whatever its
outcome. A refusal is a 429 with `Retry-After` and `x-ratelimit-*` headers, in the client API's
error format; a call refused by any limit (or by a budget) takes nothing from the others.

Model calls are counted in the body phase (the model and the request's size are known there);
REST calls, whose body the gateway does not read, in the request phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from tollway.limits.limiter import Limiter, Ticket
from tollway.limits.rules import RateRule, compile_globs
from tollway.policies.base import Pending, Policy, Step, Verdict
from tollway.policies.config import PolicyConfig

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext
    from tollway.policies.registry import CompileScope

RateScope = Literal["key", "app", "team", "service", "model"]


class RateLimitRule(PolicyConfig):
    scope: RateScope = Field(
        description="what the limit is counted per: key, app, team, service or model"
    )
    match: list[str] | None = Field(
        None,
        min_length=1,
        description="names or globs (key, app, team, service or model names) the rule applies "
        "to; default: every one, each with its own counters. Per scope, the first rule that "
        "matches applies.",
    )
    requests_per_minute: int | None = Field(None, ge=1)
    burst: int | None = Field(
        None,
        ge=1,
        description="requests that may come at once (the bucket's size); default "
        "requests_per_minute",
    )
    tokens_per_minute: int | None = Field(None, ge=1)
    token_burst: int | None = Field(
        None, ge=1, description="tokens that may be used at once; default tokens_per_minute"
    )
    concurrent: int | None = Field(None, ge=1, description="requests in progress at a time")

    @model_validator(mode="after")
    def _coherent(self) -> RateLimitRule:
        if not (self.requests_per_minute or self.tokens_per_minute or self.concurrent):
            raise ValueError(
                "give at least one of requests_per_minute, tokens_per_minute, concurrent"
            )
        if self.burst is not None and self.requests_per_minute is None:
            raise ValueError("burst goes with requests_per_minute")
        if self.token_burst is not None and self.tokens_per_minute is None:
            raise ValueError("token_burst goes with tokens_per_minute")
        return self


class RateLimitConfig(PolicyConfig):
    rules: list[RateLimitRule] = Field(min_length=1)
    output_tokens_estimate: int = Field(
        1024,
        ge=0,
        description="tokens reserved for the answer of a call that sets no max_tokens (settled "
        "with the real usage afterwards)",
    )


class LimitPolicy(Policy):
    """What `rate_limit` and `budget` share: one limiter per chain (see tollway.limits)."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def on_request(self, ctx: RequestContext) -> Step:
        route = ctx.route
        if route is not None and route.api is not None:
            return None  # a model API: counted in the body phase, once the model is known
        return self._decide(ctx)

    def on_body(self, ctx: RequestContext) -> Step:
        return self._decide(ctx)

    def _decide(self, ctx: RequestContext) -> Step:
        reserved = ctx.reserved
        ticket = reserved.get("limits") if reserved is not None else None
        if ticket is None:
            ticket = self.limiter.admit(ctx)
            if ticket is None:
                return None
            if reserved is None:
                ctx.reserved = {"limits": ticket}
            else:
                reserved["limits"] = ticket
        if ticket.outcome is None:
            return Pending(self._wait(ctx, ticket))
        return self._verdict(ctx, ticket)

    async def _wait(self, ctx: RequestContext, ticket: Ticket) -> Verdict:
        future = ticket.future
        assert future is not None
        await future
        return self._verdict(ctx, ticket)

    def _verdict(self, ctx: RequestContext, ticket: Ticket) -> Verdict:
        verdict: Verdict = self.limiter.verdict(ticket, self.name)
        if verdict is None:
            self.limiter.announce(ctx, ticket)
        return verdict

    def on_done(self, ctx: RequestContext) -> None:
        reserved = ctx.reserved
        ticket = reserved.get("limits") if reserved is not None else None
        if ticket is not None and not ticket.settled:
            self.limiter.settle(ctx, ticket)


class RateLimit(LimitPolicy):
    name = "rate_limit"
    __slots__ = ()


def shared_limiter(scope: CompileScope, policy: str) -> Limiter:
    """The chain's one limiter (made by the first of rate_limit and budget to be built)."""
    if policy in scope.shared:
        raise ValueError(f"{policy} appears twice in the chain; give all its rules in one entry")
    scope.shared[policy] = True
    limiter = scope.shared.get("limiter")
    if limiter is None:
        counters = scope.counters
        if counters is None:
            from tollway.limits.local import SharedCounters

            counters = SharedCounters(lanes=1, slots=4096)
        limiter = scope.shared["limiter"] = Limiter(counters)
    assert isinstance(limiter, Limiter)
    return limiter


def build_rate_limit(config: RateLimitConfig, scope: CompileScope) -> Policy:
    limiter = shared_limiter(scope, RateLimit.name)
    limiter.add_rate_rules(
        [
            RateRule(
                scope=rule.scope,
                pattern=compile_globs(rule.match),
                requests_per_minute=rule.requests_per_minute,
                burst=rule.burst,
                tokens_per_minute=rule.tokens_per_minute,
                token_burst=rule.token_burst,
                concurrent=rule.concurrent,
            )
            for rule in config.rules
        ],
        config.output_tokens_estimate,
    )
    return RateLimit(limiter)
