"""The limiter: one per snapshot, shared by the `rate_limit` and `budget` policies of its chain.

Whichever of the two runs first asks the counter store once for all of a call's counters
(requests, tokens, concurrency, budgets, in every scope), so the check is atomic across both
policies: a call refused by any counter consumes nothing from the others. The refusal is then
answered by the policy whose rule refused. The done phase settles the call once: concurrency
given back, the token reservation swapped for the tokens used, the budget reservation for the
real cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tollway.limits.counters import (
    BUCKET,
    BUDGET,
    GAUGE,
    CountersFull,
    CounterStore,
    Demand,
    Outcome,
    Settlement,
)
from tollway.limits.estimate import call_tokens
from tollway.limits.periods import Period, period_at
from tollway.limits.refusals import Part, refusal, success_headers
from tollway.limits.rules import SCOPES, BudgetRule, RateRule, Subject, first_match, subject

if TYPE_CHECKING:
    from tollway.limits.alerts import BudgetAlerts
    from tollway.policies.context import RequestContext

log = logging.getLogger("tollway.limits")

RATE_LIMIT = "rate_limit"
BUDGET_POLICY = "budget"
_MILLION = 1_000_000.0


class Ticket:
    """One call's admission: its demands, what they are for, and the decision."""

    __slots__ = (
        "abandoned",
        "announced",
        "demands",
        "future",
        "outcome",
        "parts",
        "settled",
        "tokens",
    )

    def __init__(self, demands: list[Demand], parts: list[Part], tokens: int) -> None:
        self.demands = demands
        self.parts = parts
        self.tokens = tokens
        self.outcome: Outcome | None = None
        self.future: asyncio.Future[Outcome] | None = None
        self.settled = False
        # The call ended before a shared store's decision came back.
        self.abandoned = False
        # Its x-ratelimit-* headers were put on the answer (once, by the first policy).
        self.announced = False


@dataclass(slots=True)
class _Entry:
    """A subject's rules in one scope, with the constant parts of its demands."""

    subject: Subject
    rate: RateRule | None
    budget: BudgetRule | None
    # The demands that are the same on every call (requests, concurrency), and every part in
    # the order admit lists the entry's demands: fixed ones, then tokens, then the budget. So a
    # call extends its lists once per entry instead of once per counter.
    fixed: tuple[Demand, ...]
    parts: tuple[Part, ...]
    tokens: Part | None
    budget_part: Part | None
    # Counter names made once: the token bucket's, and the budget's for its current period.
    tokens_name: str = ""
    budget_name: tuple[str, str] = ("", "")
    # Whether a call's demands depend on the call (a token estimate, a cost): else `fixed`
    # is all of them.
    varies: bool = False


class Limiter:
    def __init__(self, counters: CounterStore) -> None:
        self.counters = counters
        self.rate_rules: dict[str, list[RateRule]] = {}
        self.budget_rules: dict[str, list[BudgetRule]] = {}
        self.output_estimate = 1024
        self.zone = ZoneInfo("UTC")
        self.budget_allow_when_down = False
        self.alerts: BudgetAlerts | None = None
        self._scopes: tuple[str, ...] = ()
        self._entries: dict[str, dict[Any, _Entry | None]] = {}
        self._periods: dict[str, Period] = {}
        self._prices: dict[str, tuple[float, float]] = {}
        self.needs_body = False

    # -- building (at compile time) ---------------------------------------------------

    def add_rate_rules(self, rules: list[RateRule], output_estimate: int) -> None:
        for rule in rules:
            self.rate_rules.setdefault(rule.scope, []).append(rule)
        self.output_estimate = output_estimate
        self._reindex()

    def add_budget_rules(
        self,
        rules: list[BudgetRule],
        zone: ZoneInfo,
        allow_when_down: bool,
        alerts: BudgetAlerts | None,
    ) -> None:
        for rule in rules:
            self.budget_rules.setdefault(rule.scope, []).append(rule)
        self.zone = zone
        self.budget_allow_when_down = allow_when_down
        self.alerts = alerts
        self._reindex()

    def _reindex(self) -> None:
        self._scopes = tuple(s for s in SCOPES if s in self.rate_rules or s in self.budget_rules)
        self._entries = {scope: {} for scope in self._scopes}
        # Model rules, token limits and budgets need the body (the model, the estimate).
        self.needs_body = (
            "model" in self._scopes
            or bool(self.budget_rules)
            or any(r.tokens_per_minute for rules in self.rate_rules.values() for r in rules)
        )

    # -- a call ------------------------------------------------------------------------

    def _entry(self, ctx: RequestContext, scope: str) -> _Entry | None:
        if scope == "key":
            key = ctx.key
            cache_key: Any = (key.key_id, key.name) if key is not None else None
        elif scope == "app" or scope == "team":
            app = ctx.key.app if ctx.key is not None else None
            cache_key = None if app is None else (app.id if scope == "app" else app.team_id)
        elif scope == "service":
            cache_key = ctx.service.id if ctx.service is not None else None
        else:
            cache_key = ctx.model
        if cache_key is None:
            return None
        entries = self._entries[scope]
        try:
            return entries[cache_key]
        except KeyError:
            pass
        found = subject(ctx, scope)
        entry = None if found is None else self._build_entry(found)
        if len(entries) > 100_000:
            entries.clear()
        entries[cache_key] = entry
        return entry

    def _build_entry(self, who: Subject) -> _Entry | None:
        rate = first_match(self.rate_rules.get(who.scope, ()), who.name)
        budget = first_match(self.budget_rules.get(who.scope, ()), who.name)
        if rate is None and budget is None:
            return None
        fixed: list[Demand] = []
        parts: list[Part] = []
        tokens = None
        if rate is not None:
            base = f"{who.scope}:{who.id}"
            if rate.requests_per_minute:
                size = float(rate.burst or rate.requests_per_minute)
                per_s = rate.requests_per_minute / 60.0
                part = Part(RATE_LIMIT, "requests", who, rate.requests_per_minute, size, per_s)
                fixed.append((BUCKET, "r:" + base, 1.0, size, per_s, 0.0))
                parts.append(part)
            if rate.concurrent:
                part = Part(RATE_LIMIT, "concurrent", who, rate.concurrent, rate.concurrent, 0.0)
                fixed.append((GAUGE, "c:" + base, 1.0, float(rate.concurrent), 0.0, 0.0))
                parts.append(part)
            if rate.tokens_per_minute:
                size = float(rate.token_burst or rate.tokens_per_minute)
                tokens = Part(
                    RATE_LIMIT,
                    "tokens",
                    who,
                    rate.tokens_per_minute,
                    size,
                    rate.tokens_per_minute / 60.0,
                )
        budget_part = None
        if budget is not None:
            budget_part = Part(
                BUDGET_POLICY, "budget", who, budget.amount_usd, budget.amount_usd, 0.0
            )
            budget_part.budget = budget
            if self.alerts is not None:
                self.alerts.watch(f"b:{who.scope}:{who.id}:{budget.period}:", budget_part)
        if tokens is not None:
            parts.append(tokens)
        if budget_part is not None:
            parts.append(budget_part)
        return _Entry(
            who,
            rate,
            budget,
            tuple(fixed),
            tuple(parts),
            tokens,
            budget_part,
            f"t:{who.scope}:{who.id}",
            varies=tokens is not None or budget_part is not None,
        )

    def admit(self, ctx: RequestContext) -> Ticket | None:
        """Ask for every counter the call takes from: None when no rule applies."""
        demands: list[Demand] = []
        parts: list[Part] = []
        estimate: tuple[int, int] | None = None
        for scope in self._scopes:
            entry = self._entry(ctx, scope)
            if entry is None:
                continue
            demands += entry.fixed
            parts += entry.parts
            if entry.varies:
                if estimate is None:
                    estimate = self._estimate(ctx)
                tokens_part = entry.tokens
                if tokens_part is not None:
                    demands.append(
                        (
                            BUCKET,
                            entry.tokens_name,
                            float(estimate[0] + estimate[1]),
                            tokens_part.size,
                            tokens_part.rate,
                            0.0,
                        )
                    )
                budget_part = entry.budget_part
                if budget_part is not None and entry.budget is not None:
                    period = self._period(entry.budget.period)
                    label, name = entry.budget_name
                    if label != period.label:
                        name = f"b:{scope}:{entry.subject.id}:{entry.budget.period}:{period.label}"
                        entry.budget_name = (period.label, name)
                    cost = self._cost(ctx, estimate)
                    allow = 1.0 if self.budget_allow_when_down else 0.0
                    demands.append((BUDGET, name, cost, budget_part.size, allow, period.end))
        if not demands:
            return None
        tokens = estimate[0] + estimate[1] if estimate is not None else 0
        return self._counted(
            Ticket(demands, parts, tokens),
            "rate limits pass this call uncounted; budgets refuse it",
        )

    def _counted(self, ticket: Ticket, when_full: str) -> Ticket:
        """The ticket with the counters' decision on its demands (now, or when it comes)."""
        try:
            decided = self.counters.admit(ticket.demands)
        except CountersFull as exc:
            log.error("%s: %s", exc, when_full)
            ticket.outcome = _table_full(ticket.parts)
            ticket.settled = True
            return ticket
        if isinstance(decided, Outcome):
            ticket.outcome = decided
        else:
            ticket.future = decided
            decided.add_done_callback(lambda done: self._decided(ticket, done))
        return ticket

    def _budget_demands(
        self, ctx: RequestContext, cost: float, allow: float
    ) -> tuple[list[Demand], list[Part]]:
        """A demand of `cost` on every budget the call falls under, with its part."""
        demands: list[Demand] = []
        parts: list[Part] = []
        for scope in self._scopes:
            entry = self._entry(ctx, scope)
            if entry is None or entry.budget is None or entry.budget_part is None:
                continue
            period = self._period(entry.budget.period)
            name = f"b:{scope}:{entry.subject.id}:{entry.budget.period}:{period.label}"
            demands.append((BUDGET, name, cost, entry.budget_part.size, allow, period.end))
            parts.append(entry.budget_part)
        return demands, parts

    def afterwards(self, ctx: RequestContext) -> Ticket | None:
        """The ticket of a call the gateway did not admit itself, made elsewhere and counted
        once it is known (a request of a batch a provider ran through its own Batch API): its
        budgets alone, nothing reserved, admitted, so that the done phase's settling adds
        the call's cost to each budget it falls under. None when no budget applies."""
        demands, parts = self._budget_demands(ctx, 0.0, 0.0)
        if not demands:
            return None
        ticket = Ticket(demands, parts, 0)
        ticket.outcome = Outcome(True, -1, [0.0] * len(demands))
        return ticket

    def admit_cost(self, ctx: RequestContext, cost: float) -> Ticket | None:
        """Reserve `cost` from every budget the call falls under, as `admit` reserves one
        call's estimate (a passed-through batch's whole estimated cost, checked at its
        creation): refused when it does not fit in what is left. None when no budget applies.
        Give the reservation back with `release`."""
        allow = 1.0 if self.budget_allow_when_down else 0.0
        demands, parts = self._budget_demands(ctx, cost, allow)
        if not demands:
            return None
        return self._counted(Ticket(demands, parts, 0), "budgets refuse this batch")

    def over_budget(self, ticket: Ticket) -> Any:
        """The refusal of a decided `admit_cost` ticket whose cost does not fit: a budget
        admits a call while its spend is below the amount (one call's overshoot is bounded by
        that call), so a whole batch's cost is checked here against what is left. None when
        it fits."""
        outcome = ticket.outcome
        if outcome is None:
            return None
        if not outcome.admitted:
            return self.verdict(ticket, BUDGET_POLICY)
        for i, demand in enumerate(ticket.demands):
            if i < len(outcome.used) and outcome.used[i] > demand[3]:
                wait = max(1.0, demand[5] - time.time())
                return refusal(ticket.parts[i], Outcome(False, i, outcome.used, wait), demand)
        return None

    def release(self, ticket: Ticket) -> None:
        """Give back what an admitted ticket reserved, nothing spent."""
        if ticket.outcome is None:
            ticket.abandoned = True
        elif ticket.outcome.admitted and not ticket.settled:
            self._settle(ticket, 0, 0.0)

    def _decided(self, ticket: Ticket, done: asyncio.Future[Outcome]) -> None:
        if done.cancelled():
            ticket.outcome = Outcome(False, 0, [], 1.0, fallback=True)
            return
        ticket.outcome = done.result()
        if ticket.abandoned and ticket.outcome.admitted:
            # The client left while the decision was on its way: give everything back.
            self._settle(ticket, 0, None)

    def _estimate(self, ctx: RequestContext) -> tuple[int, int]:
        route = ctx.route
        operation = route.api.operation if route is not None and route.api is not None else ""
        return call_tokens(ctx.request.body, operation, self.output_estimate)

    def _period(self, kind: str) -> Period:
        now = time.time()
        period = self._periods.get(kind)
        if period is None or now >= period.end:
            period = period_at(kind, self.zone, now)
            self._periods[kind] = period
        return period

    def _cost(self, ctx: RequestContext, estimate: tuple[int, int]) -> float:
        model = ctx.model
        if model is None:
            return 0.0
        prices = self._prices.get(model)
        if prices is None:
            prices = self._prices_of(ctx, model)
        return estimate[0] * prices[0] + estimate[1] * prices[1]

    def _prices_of(self, ctx: RequestContext, model: str) -> tuple[float, float]:
        """USD a token in and out: the dearest of the model's deployments (an upper bound)."""
        route = ctx.config.route(model)
        price_in = price_out = 0.0
        for deployment in route.deployments if route is not None else ():
            info = deployment.info
            if info is not None:
                price_in = max(price_in, float(info.input) / _MILLION)
                price_out = max(price_out, float(info.output or 0) / _MILLION)
        if len(self._prices) > 10_000:
            self._prices.clear()
        self._prices[model] = (price_in, price_out)
        return price_in, price_out

    # -- answering ---------------------------------------------------------------------

    def verdict(self, ticket: Ticket, policy: str) -> Any:
        """The refusal `policy` answers with (None when it admits, or another refused)."""
        outcome = ticket.outcome
        if outcome is None or outcome.admitted:
            return None
        part = ticket.parts[outcome.failed] if outcome.failed < len(ticket.parts) else None
        if part is None or part.policy != policy:
            return None
        return refusal(part, outcome, ticket.demands[outcome.failed])

    def headers(self, ticket: Ticket) -> tuple[tuple[bytes, bytes], ...]:
        outcome = ticket.outcome
        if outcome is None or not outcome.admitted:
            return ()
        return success_headers(ticket.parts, outcome)

    def announce(self, ctx: RequestContext, ticket: Ticket) -> None:
        """Put an admitted call's x-ratelimit-* state on its answer, once."""
        if not ticket.announced:
            ticket.announced = True
            headers = self.headers(ticket)
            if headers:
                ctx.answer_headers += headers

    # -- the done phase --------------------------------------------------------------

    def settle(self, ctx: RequestContext, ticket: Ticket) -> None:
        if ticket.settled:
            return
        outcome = ticket.outcome
        if outcome is None:
            ticket.abandoned = True
            return
        if not outcome.admitted:
            ticket.settled = True
            return
        if ctx.usage is not None:
            used = int(ctx.usage.get("total_tokens") or 0) or (
                int(ctx.usage.get("prompt_tokens") or 0)
                + int(ctx.usage.get("completion_tokens") or 0)
            )
        elif not ctx.upstream_started_at:
            used = 0  # refused later in the chain, or never reached a provider
        else:
            used = ticket.tokens  # the provider may have worked: keep the estimate
        cost = float(ctx.cost) if ctx.cost is not None else 0.0
        self._settle(ticket, used, cost)

    def _settle(self, ticket: Ticket, used_tokens: int, cost: float | None) -> None:
        ticket.settled = True
        outcome = ticket.outcome
        assert outcome is not None
        items: list[Settlement] = []
        fallback = outcome.fallback
        spend = cost or 0.0
        # Each demand read only as far as its kind needs; indexed, not zipped: zip's `strict`
        # keyword costs a keyword dict on every call (demands and parts are built together).
        parts = ticket.parts
        for i, demand in enumerate(ticket.demands):
            kind = demand[0]
            if kind == GAUGE:
                items.append((GAUGE, demand[1], demand[2], 0.0, 0.0, 0.0))
            elif kind == BUDGET:
                # Admitted without a reservation while the store was down: nothing to release.
                amount = 0.0 if fallback and demand[4] else demand[2]
                items.append((BUDGET, demand[1], amount, spend, 0.0, demand[5]))
            elif parts[i].kind == "tokens":
                amount = demand[2]
                give_back = amount - used_tokens if cost is not None else amount
                if give_back:
                    items.append((BUCKET, demand[1], give_back, 0.0, demand[4], 0.0))
        if not items:
            return
        hook = self.alerts.spent if self.alerts is not None else None
        self.counters.settle(items, hook, fallback)


def _table_full(parts: list[Part]) -> Outcome:
    """No room to count: rate limits let the call pass, budgets refuse it."""
    for i, part in enumerate(parts):
        if part.policy == BUDGET_POLICY:
            return Outcome(False, i, [], 60.0, fallback=True)
    return Outcome(True, -1, [0.0] * len(parts))
