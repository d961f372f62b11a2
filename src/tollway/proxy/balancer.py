"""Choosing the deployments a call tries, in order: per-worker state beside the snapshot.

The snapshot says which deployments a model has and how they share its calls
(`RoutingPolicy`); what changes per call lives here, keyed by route and deployment label, so
that a new snapshot keeps it for the deployments it still has: round-robin positions, calls in
flight, latency averages, recent usage, circuit breakers, retry budgets. One worker runs one
event loop thread: no lock is needed.

Strategies order a group's healthy deployments; the first is tried first, the others stand by
for retries, then the fallback models' groups in turn:

- `round_robin` / `weighted`: smooth weighted round-robin (weights all 1 for round-robin);
- `least_busy`: fewest calls in flight;
- `lowest_latency`: lowest moving average of total latency (of time to first token for
  streams), with a few calls in a hundred sent elsewhere so that a recovered deployment is
  measured again;
- `cost`: cheapest for this call's estimated tokens, from the catalog's prices;
- `usage`: most headroom under the deployment's own rpm/tpm in the current minute.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal

from tollway.config.snapshot import (
    Deployment,
    ModelRoute,
    RuntimeConfig,
)
from tollway.proxy.breaker import Breaker

# One deployment's state in one worker: model, deployment label, breaker state (closed, open,
# half_open), failures in a row, calls in flight, latency average (s), seconds left open.
DeploymentHealth = tuple[str, str, str, int, int, float, float]

STRATEGIES = ("round_robin", "weighted", "least_busy", "lowest_latency", "cost", "usage")
# Share of calls a lowest-latency group sends to another deployment, to keep measuring it.
_EXPLORE = 0.05
# Moving averages weigh the newest sample by this much.
_EWMA = 0.2
# A retry budget may bank at most this many retries (a burst after a quiet spell).
_BUDGET_CAP = 10.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One deployment to try, in the group it was chosen from (its own model's, or a
    fallback's): the name sent upstream is the deployment's model, else the group's name."""

    deployment: Deployment
    route: ModelRoute


class DeploymentState:
    __slots__ = ("breaker", "in_flight", "latency", "minute", "requests", "tokens", "ttfb")

    def __init__(self, route: ModelRoute) -> None:
        self.breaker = Breaker(route.routing.breaker)
        self.in_flight = 0
        self.latency = 0.0  # EWMA of total seconds; 0 until measured
        self.ttfb = 0.0  # EWMA of seconds to the first byte of streams
        self.minute = 0
        self.requests = 0
        self.tokens = 0


class RouteState:
    __slots__ = ("budget", "credits", "deployments")

    def __init__(self) -> None:
        self.credits: dict[str, int] = {}
        self.deployments: dict[str, DeploymentState] = {}
        self.budget = _BUDGET_CAP


class Balancers:
    __slots__ = ("_plans", "_routes", "random")

    def __init__(self, seed: int | None = None) -> None:
        self._routes: dict[str, RouteState] = {}
        self.random = random.Random(seed)
        # The attempts of a model with one deployment and nothing chosen per call, made
        # once per route (the route object of the snapshot in force).
        self._plans: dict[str, tuple[ModelRoute, tuple[Attempt, ...]]] = {}

    def fixed_plan(self, route: ModelRoute) -> list[Attempt] | None:
        """The attempts of a call to `route` when they cannot depend on the call: one
        deployment, no fallback, no strategy that reads the request, no client choice (the
        common case, on every call's path); None otherwise."""
        found = self._plans.get(route.name)
        if found is not None and found[0] is route:
            return list(found[1])
        routing = route.routing
        if (
            len(route.deployments) != 1
            or routing.fallbacks
            or routing.context_window_fallback
            or routing.client_choice
        ):
            return None
        attempt = Attempt(route.deployments[0], route)
        plan = (attempt,) * (1 + routing.retries)
        if len(self._plans) > 10_000:
            self._plans.clear()
        self._plans[route.name] = (route, plan)
        return list(plan)

    # -- state ---------------------------------------------------------------------------

    def _route(self, route: ModelRoute) -> RouteState:
        state = self._routes.get(route.name)
        if state is None:
            state = self._routes[route.name] = RouteState()
        return state

    def state(self, route: ModelRoute, deployment: Deployment) -> DeploymentState:
        states = self._route(route).deployments
        found = states.get(_key(deployment))
        if found is None:
            found = states[_key(deployment)] = DeploymentState(route)
        return found

    # -- choosing ------------------------------------------------------------------------

    def pick(self, route: ModelRoute) -> Deployment:
        """The deployment a call to `route` tries first (breakers and strategy applied)."""
        return self.order(route, time.monotonic())[0]

    def order(
        self,
        route: ModelRoute,
        now: float,
        strategy: str | None = None,
        estimated_tokens: int = 0,
    ) -> list[Deployment]:
        """The group's deployments, healthiest and best first: those whose breaker lets a
        call through in strategy order, then (when none does) the others, so that a call is
        never refused only because every breaker is open."""
        deployments = route.deployments
        if len(deployments) == 1:
            return [deployments[0]]
        allowed = []
        held = []
        for deployment in deployments:
            if self.state(route, deployment).breaker.allows(now):
                allowed.append(deployment)
            else:
                held.append(deployment)
        ranked = self._rank(
            route, allowed, strategy or route.routing.strategy, now, estimated_tokens
        )
        return ranked + held

    def _rank(
        self,
        route: ModelRoute,
        deployments: list[Deployment],
        strategy: str,
        now: float,
        estimated_tokens: int,
    ) -> list[Deployment]:
        if len(deployments) <= 1:
            return deployments
        # Weight 0 is a standby: first only when nothing else may be.
        primaries = [d for d in deployments if d.weight > 0] or deployments
        if strategy in ("round_robin", "weighted"):
            first = self._smooth_pick(route, primaries, strategy == "weighted")
        elif strategy == "least_busy":
            first = min(primaries, key=lambda d: self.state(route, d).in_flight)
        elif strategy == "lowest_latency":
            first = self._fastest(route, primaries)
        elif strategy == "cost":
            first = min(primaries, key=lambda d: _estimated_cost(d, estimated_tokens))
        else:
            first = max(primaries, key=lambda d: self._headroom(route, d, now))
        rest = [d for d in deployments if d is not first]
        rest.sort(key=lambda d: -d.weight)
        return [first, *rest]

    def _smooth_pick(
        self, route: ModelRoute, deployments: list[Deployment], weighted: bool
    ) -> Deployment:
        """Smooth weighted round-robin: each deployment's credit grows by its weight, the
        richest is picked and pays the total, so picks are spread out in proportion."""
        credits = self._route(route).credits
        total = 0
        best = deployments[0]
        best_credit = None
        for deployment in deployments:
            weight = deployment.weight if weighted else 1
            credit = credits.get(_key(deployment), 0) + weight
            credits[_key(deployment)] = credit
            total += weight
            if best_credit is None or credit > best_credit:
                best, best_credit = deployment, credit
        credits[_key(best)] = (best_credit or 0) - total
        return best

    def _fastest(self, route: ModelRoute, deployments: list[Deployment]) -> Deployment:
        unmeasured = [d for d in deployments if self.state(route, d).latency == 0.0]
        if unmeasured:
            return unmeasured[0]
        if self.random.random() < _EXPLORE:
            return self.random.choice(deployments)
        return min(deployments, key=lambda d: self.state(route, d).latency)

    def _headroom(self, route: ModelRoute, deployment: Deployment, now: float) -> float:
        state = self.state(route, deployment)
        minute = int(now // 60)
        used_requests = state.requests if state.minute == minute else 0
        used_tokens = state.tokens if state.minute == minute else 0
        shares = []
        if deployment.rpm:
            shares.append(1 - used_requests / deployment.rpm)
        if deployment.tpm:
            shares.append(1 - used_tokens / deployment.tpm)
        return min(shares) if shares else 1.0

    # -- feedback ------------------------------------------------------------------------

    def started(self, route: ModelRoute, deployment: Deployment, now: float) -> DeploymentState:
        """The attempt is on its way; its state, to hand back to `finished`."""
        state = self.state(route, deployment)
        state.in_flight += 1
        state.breaker.started()
        minute = int(now // 60)
        if state.minute != minute:
            state.minute, state.requests, state.tokens = minute, 0, 0
        state.requests += 1
        return state

    def finished(
        self,
        route: ModelRoute,
        deployment: Deployment,
        now: float,
        *,
        ok: bool | None,
        latency: float = 0.0,
        ttfb: float = 0.0,
        tokens: int = 0,
        state: DeploymentState | None = None,
    ) -> None:
        if state is None:
            state = self.state(route, deployment)
        state.in_flight = max(0, state.in_flight - 1)
        state.tokens += tokens
        if ok:
            state.breaker.succeeded(now)
            sample = ttfb or latency
            if sample:
                state.latency = (
                    sample
                    if state.latency == 0.0
                    else (_EWMA * sample + (1 - _EWMA) * state.latency)
                )
        elif ok is False:
            state.breaker.failed(now)
        else:
            state.breaker.released()

    def hold(self, route: ModelRoute, deployment: Deployment, until: float) -> None:
        self.state(route, deployment).breaker.hold(until)

    # -- retry budgets -------------------------------------------------------------------

    def earn(self, route: ModelRoute) -> None:
        """A call to the group adds its share to the group's retry budget."""
        state = self._route(route)
        state.budget = min(_BUDGET_CAP, state.budget + route.routing.retry_budget)

    def spend(self, route: ModelRoute) -> bool:
        """Take one retry from the group's budget; False when it is spent."""
        state = self._route(route)
        if state.budget < 1.0:
            return False
        state.budget -= 1.0
        return True

    def describe(self, config: RuntimeConfig, now: float | None = None) -> list[DeploymentHealth]:
        """Every deployment's breaker and load in this worker, for the admin API and metrics
        (sent to the recorder with the worker's periodic report)."""
        if now is None:
            now = time.monotonic()
        out: list[DeploymentHealth] = []
        routes = [*config.models.values(), *([config.wildcard] if config.wildcard else [])]
        for route in routes:
            for deployment in route.deployments:
                state = self.state(route, deployment)
                breaker = state.breaker
                out.append(
                    (
                        route.name,
                        _key(deployment),
                        breaker.state,
                        breaker.consecutive,
                        state.in_flight,
                        round(state.latency, 6),
                        round(breaker.open_for(now), 3),
                    )
                )
        return out


def _estimated_cost(deployment: Deployment, tokens: int) -> Decimal:
    """Price of `tokens` in and as many out (a rough shape of a call) on the deployment;
    deployments without a price sort last."""
    info = deployment.info
    if info is None:
        return Decimal("Infinity")
    out = info.output if info.output is not None else info.input
    return info.input * max(tokens, 1) + out * max(tokens, 1)


def _key(deployment: Deployment) -> str:
    """How the balancer tells a group's deployments apart (compiled ones have a label)."""
    return deployment.label or deployment.model or ""
