"""/limits: the rate limits and budgets the gateway enforces, as its configuration file sets
them (the `rate_limits` and `budgets` sections, or the same settings inline in `policies`;
docs/metering.md), with each budget's spend so far in its current period, read from the
call records.

The admin API reads the file's sections as the gateway loaded them when it started: it does
not see a reload (SIGHUP) until the next start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.admin.auth import Ctx
from tollway.admin.schemas import Out
from tollway.analytics.spend import spend_since
from tollway.limits.periods import period_at
from tollway.limits.rules import compile_globs
from tollway.policies.budget import BudgetConfig
from tollway.policies.rate_limit import RateLimitConfig
from tollway.store import services
from tollway.store.schema import ApiKey, App, Service, Team

if TYPE_CHECKING:
    from tollway.config.models import GatewayConfig

router = APIRouter(tags=["limits"])

Scope = Literal["key", "app", "team", "service", "model"]
BudgetScope = Literal["key", "app", "team"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The rate limits and budgets a gateway enforces (None: not configured)."""

    rate_limits: RateLimitConfig | None = None
    budgets: BudgetConfig | None = None

    @classmethod
    def of(cls, config: GatewayConfig) -> Limits:
        """A loaded configuration's: each section, else its policy's settings given inline
        in the `policies` chain (the gateway compiles the one or the other)."""
        inline: dict[str, Any] = {}
        for entry in config.policies or ():
            if isinstance(entry, dict):
                inline.update((name, settings) for name, settings in entry.items() if settings)
        rate_limits = config.rate_limits
        if rate_limits is None and "rate_limit" in inline:
            rate_limits = RateLimitConfig.model_validate(inline["rate_limit"])
        budgets = config.budgets
        if budgets is None and "budget" in inline:
            budgets = BudgetConfig.model_validate(inline["budget"])
        return cls(rate_limits, budgets)


class RateLimitOut(Out):
    index: int = Field(
        description="its place in rate_limits.rules: per scope, the first rule whose match "
        "selects a call's name applies"
    )
    scope: Scope = Field(description="what it is counted per: key, app, team, service or model")
    match: list[str] | None = Field(
        description="the names or globs it applies to (key: team/app/key, app: team/app, "
        "team: team, service: team/service, model: model); null: every one, each with "
        "counters of its own"
    )
    requests_per_minute: int | None
    burst: int | None = Field(
        description="requests that may come at once (default requests_per_minute)"
    )
    tokens_per_minute: int | None
    token_burst: int | None = Field(
        description="tokens that may be used at once (default tokens_per_minute)"
    )
    concurrent: int | None = Field(description="requests in progress at a time")


class BudgetUse(Out):
    id: int = Field(description="the key's, app's or team's id")
    name: str = Field(description="the name the rule's globs match: team/app/key, team/app or team")
    team_id: int
    spent_usd: str = Field(description="USD spent in the current period, as a decimal string")
    left_usd: str = Field(description="amount_usd less spent_usd, never below 0")
    used: float = Field(description="spent_usd / amount_usd (above 1 once overshot)")


class BudgetOut(Out):
    index: int = Field(
        description="its place in budgets.rules: per scope, the first rule whose match selects "
        "a key's, app's or team's name applies"
    )
    scope: BudgetScope = Field(description="what each budget belongs to: key, app or team")
    match: list[str] | None = Field(
        description="the names or globs it applies to (key: team/app/key, app: team/app, "
        "team: team); null: every one, each with a budget of its own"
    )
    amount_usd: str = Field(description="USD per period, as a decimal string")
    period: Literal["day", "week", "month"]
    alerts: list[float] = Field(description="fractions of the amount at which an alert is sent")
    period_start: datetime = Field(description="the current period's start, in `timezone`")
    period_end: datetime = Field(description="when the next period starts (spend resets)")
    subjects: list[BudgetUse] = Field(
        description="the keys, apps or teams it applies to (those the caller may see), "
        "biggest spenders first, at most `top`"
    )
    subjects_total: int = Field(description="how many there are in all")


class LimitsOut(Out):
    rate_limits: list[RateLimitOut]
    output_tokens_estimate: int | None = Field(
        description="tokens reserved for the answer of a call that sets no max_tokens; null "
        "without rate limits"
    )
    budgets: list[BudgetOut]
    timezone: str | None = Field(
        description="the zone budget periods are calendar days, weeks and months in; null "
        "without budgets"
    )
    when_counters_unavailable: Literal["refuse", "allow"] | None = Field(
        description="with Redis counters, whether budgets refuse calls or let them through "
        "while Redis cannot be reached; null without budgets"
    )
    alert_webhook: str | None = Field(
        description="the URL budget alerts are POSTed to (shown to platform admins only)"
    )
    as_of: datetime = Field(description="when the spend was read")


@dataclass(frozen=True, slots=True)
class _Subject:
    id: int
    name: str
    team_id: int
    # A revoked key still shows when it spent in the period; otherwise it is left out.
    retired: bool = False


class _Subjects:
    """The keys, apps, teams and services the caller may see, by scope, each under the name
    the gateway matches rules against (config/tenancy.py), read once per request."""

    def __init__(self, session: Session, team_ids: set[int] | None) -> None:
        self.session = session
        self.team_ids = team_ids
        self._found: dict[str, list[_Subject]] = {}

    def of(self, scope: str) -> list[_Subject]:
        if scope not in self._found:
            self._found[scope] = self._read(scope)
        return self._found[scope]

    def _read(self, scope: str) -> list[_Subject]:
        mine = self.team_ids
        if scope == "team":
            teams = select(Team.id, Team.name)
            if mine is not None:
                teams = teams.where(Team.id.in_(mine))
            return [_Subject(i, name, i) for i, name in self.session.execute(teams)]
        if scope == "app":
            apps = select(App.id, Team.name, App.name, App.team_id).join(
                Team, App.team_id == Team.id
            )
            if mine is not None:
                apps = apps.where(App.team_id.in_(mine))
            return [_Subject(i, f"{t}/{a}", team) for i, t, a, team in self.session.execute(apps)]
        if scope == "key":
            keys = (
                select(ApiKey.id, Team.name, App.name, ApiKey.name, App.team_id, ApiKey.revoked_at)
                .join(App, ApiKey.app_id == App.id)
                .join(Team, App.team_id == Team.id)
            )
            if mine is not None:
                keys = keys.where(App.team_id.in_(mine))
            return [
                _Subject(i, f"{t}/{a}/{k}", team, revoked is not None)
                for i, t, a, k, team, revoked in self.session.execute(keys)
            ]
        if scope == "service":
            found = (
                select(Service.id, Team.name, Service.name, Service.team_id)
                .join(Team, Service.team_id == Team.id)
                .where(Service.id.in_(services.visible(select(Service.id), mine)))
            )
            return [_Subject(i, f"{t}/{s}", team) for i, t, s, team in self.session.execute(found)]
        return []  # models are everyone's: no subjects to read


def _selects(pattern: re.Pattern[str] | None, name: str) -> bool:
    return pattern is None or pattern.fullmatch(name) is not None


def _applies(scope: str, pattern: re.Pattern[str] | None, subjects: _Subjects) -> bool:
    """Whether a rule concerns the caller: it has no globs (it applies to every one), it
    limits a model (models are shared by all), or its globs select something the caller's
    teams own (a service: one the caller may read, its teams' and the public ones)."""
    if pattern is None or scope == "model":
        return True
    return any(pattern.fullmatch(s.name) for s in subjects.of(scope))


def _usd(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _rate_limits(config: RateLimitConfig, subjects: _Subjects) -> list[RateLimitOut]:
    found = []
    for index, rule in enumerate(config.rules):
        if subjects.team_ids is not None and not _applies(
            rule.scope, compile_globs(rule.match), subjects
        ):
            continue
        found.append(
            RateLimitOut(
                index=index,
                scope=rule.scope,
                match=rule.match,
                requests_per_minute=rule.requests_per_minute,
                burst=rule.burst or rule.requests_per_minute,
                tokens_per_minute=rule.tokens_per_minute,
                token_burst=rule.token_burst or rule.tokens_per_minute,
                concurrent=rule.concurrent,
            )
        )
    return found


def _budgets(
    config: BudgetConfig,
    subjects: _Subjects,
    spent: Callable[[BudgetScope, datetime], dict[int, Decimal]],
    now: float,
    top: int,
) -> list[BudgetOut]:
    zone = ZoneInfo(config.timezone)
    patterns = [compile_globs(rule.match) for rule in config.rules]
    # Each key, app or team has the budget of the first rule of its scope that selects it.
    owned: dict[int, list[_Subject]] = {index: [] for index in range(len(config.rules))}
    for scope in sorted({rule.scope for rule in config.rules}):
        ranked = [i for i, rule in enumerate(config.rules) if rule.scope == scope]
        for subject in subjects.of(scope):
            first = next((i for i in ranked if _selects(patterns[i], subject.name)), None)
            if first is not None:
                owned[first].append(subject)
    found = []
    for index, rule in enumerate(config.rules):
        if subjects.team_ids is not None and not _applies(rule.scope, patterns[index], subjects):
            continue
        period = period_at(rule.period, zone, now)
        start = datetime.fromtimestamp(period.start, zone)
        by_id = spent(rule.scope, start)
        uses = _uses(owned[index], by_id, rule.amount_usd)
        found.append(
            BudgetOut(
                index=index,
                scope=rule.scope,
                match=rule.match,
                amount_usd=_usd(rule.amount_usd),
                period=rule.period,
                alerts=rule.alerts,
                period_start=start,
                period_end=datetime.fromtimestamp(period.end, zone),
                subjects=uses[:top],
                subjects_total=len(uses),
            )
        )
    return found


def _uses(owned: Iterable[_Subject], by_id: dict[int, Decimal], amount: Decimal) -> list[BudgetUse]:
    rows = []
    for subject in owned:
        spent = by_id.get(subject.id, Decimal(0))
        if subject.retired and not spent:
            continue
        rows.append((spent, subject))
    rows.sort(key=lambda row: (-row[0], row[1].name))
    return [
        BudgetUse(
            id=subject.id,
            name=subject.name,
            team_id=subject.team_id,
            spent_usd=_usd(spent),
            left_usd=_usd(max(amount - spent, Decimal(0))),
            used=round(float(spent / amount), 6),
        )
        for spent, subject in rows
    ]


@router.get("/limits", response_model=LimitsOut, summary="Rate limits and budgets")
def limits(
    ctx: Ctx,
    request: Request,
    top: Annotated[
        int, Query(ge=1, le=1000, description="keys, apps or teams shown per budget")
    ] = 100,
) -> LimitsOut:
    """The rate-limit and budget rules of the gateway's configuration file, and for each
    budget its current period and, per key, app or team it applies to, the USD spent in the
    period and what is left.

    Rules apply to names: a team's (`alpha`), an app's (`alpha/bot`), a key's
    (`alpha/bot/prod`), a service's (`alpha/chat`) or a model's. A platform admin sees every
    rule and every budget holder. Anyone else sees the rules that concern their teams: those
    without `match` (they apply to every one, so to theirs too), those of scope `model`
    (models are shared), and those whose globs select one of their teams, their teams' apps
    or keys, or a service they may read (their teams' and the public ones); a budget lists
    only their teams, apps and keys. Keys declared in the file (not in the store) are not
    listed: their calls are not attributed in the records.

    Spend comes from the call records (at minute resolution, as of the recorder's last
    write, a fraction of a second behind), so it leaves out calls still running; the
    gateway's own counters also hold what those reserved, and may have refused a call a
    little before `left_usd` reaches 0.
    """
    configured: Limits | None = request.app.state.limits
    configured = configured or Limits()
    principal = ctx.principal
    now = time.time()
    cache: dict[tuple[BudgetScope, datetime], dict[int, Decimal]] = {}

    def spent(scope: BudgetScope, since: datetime) -> dict[int, Decimal]:
        # Rules of one scope and period share one read.
        if (scope, since) not in cache:
            cache[scope, since] = spend_since(ctx.store, scope, since)
        return cache[scope, since]

    rates, budgets = configured.rate_limits, configured.budgets
    with ctx.store.read() as session:
        subjects = _Subjects(session, principal.team_ids())
        rate_rules = _rate_limits(rates, subjects) if rates is not None else []
        if budgets is not None:
            # Read within the session; the spend is read after it (spend_since opens its own).
            for scope in {rule.scope for rule in budgets.rules}:
                subjects.of(scope)
    budget_rules = _budgets(budgets, subjects, spent, now, top) if budgets is not None else []
    webhook = budgets.webhook if budgets is not None else None
    return LimitsOut(
        rate_limits=rate_rules,
        output_tokens_estimate=rates.output_tokens_estimate if rates is not None else None,
        budgets=budget_rules,
        timezone=budgets.timezone if budgets is not None else None,
        when_counters_unavailable=budgets.when_counters_unavailable
        if budgets is not None
        else None,
        alert_webhook=str(webhook.url) if webhook is not None and principal.is_admin else None,
        as_of=datetime.fromtimestamp(now, UTC),
    )
