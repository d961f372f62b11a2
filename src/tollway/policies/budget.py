"""`budget`: money a key, an app or a team may spend per calendar day, week or month.

A hard stop: no call starts once the period's budget is spent. Each call reserves its
estimated cost while it runs (tollway.limits.estimate, priced from the catalog) and a call
starts only while spend plus reservations is below the budget, so the overshoot is bounded by
the calls already in flight (by one call's cost when requests set max_tokens). Soft alerts at
fractions of the budget are recorded as events and POSTed to a webhook, once each per period.
The period's spend starts, at boot, from the call records (see docs/metering.md).

Refusals: 429 `budget_exceeded` (with Retry-After: the period's end), or 503
`budget_unavailable` while a shared counter store (Redis) cannot be reached, unless
`when_counters_unavailable: allow`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, field_validator

from tollway.analytics.sink import worker_sink
from tollway.limits import rules
from tollway.limits.alerts import BudgetAlerts, Webhook
from tollway.policies.base import Policy
from tollway.policies.config import PolicyConfig
from tollway.policies.rate_limit import LimitPolicy, shared_limiter

if TYPE_CHECKING:
    from tollway.policies.registry import CompileScope


class BudgetRule(PolicyConfig):
    scope: Literal["key", "app", "team"]
    match: list[str] | None = Field(
        None,
        min_length=1,
        description="names or globs the rule applies to; default: every one, each with its "
        "own budget. Per scope, the first rule that matches applies.",
    )
    amount_usd: Decimal = Field(gt=0, description="USD per period")
    period: Literal["day", "week", "month"] = "month"
    alerts: list[float] = Field(
        default_factory=lambda: [0.8, 1.0],
        description="fractions of the amount (0 < f <= 1) at which an alert is sent",
    )

    @field_validator("alerts")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in value):
            raise ValueError("alert thresholds are fractions of the budget: 0 < f <= 1")
        return sorted(set(value))


class BudgetWebhook(PolicyConfig):
    url: AnyHttpUrl
    headers: dict[str, str] = Field(
        default_factory=dict, description="headers sent with each alert (an auth token, say)"
    )
    timeout_s: float = Field(5.0, gt=0, le=60)


class BudgetConfig(PolicyConfig):
    rules: list[BudgetRule] = Field(min_length=1)
    timezone: str = Field("UTC", description="the zone periods are calendar-aligned in")
    webhook: BudgetWebhook | None = None
    when_counters_unavailable: Literal["refuse", "allow"] = Field(
        "refuse",
        description="with Redis counters, while Redis cannot be reached: refuse calls (503) "
        "or let them through (their cost is added once Redis is back)",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC)") from None
        return value


class Budget(LimitPolicy):
    name = "budget"
    __slots__ = ()


def build_budget(config: BudgetConfig, scope: CompileScope) -> Policy:
    limiter = shared_limiter(scope, Budget.name)
    webhook = None
    if config.webhook is not None:
        webhook = Webhook(str(config.webhook.url), config.webhook.headers, config.webhook.timeout_s)
    limiter.add_budget_rules(
        [
            rules.BudgetRule(
                scope=rule.scope,
                pattern=rules.compile_globs(rule.match),
                amount_usd=float(rule.amount_usd),
                period=rule.period,
                alerts=tuple(rule.alerts),
            )
            for rule in config.rules
        ],
        ZoneInfo(config.timezone),
        config.when_counters_unavailable == "allow",
        BudgetAlerts(scope.events or worker_sink(), webhook),
    )
    return Budget(limiter)
