"""The balancer's strategies and feedback, without sockets: picks counted over many calls."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from tollway.config.snapshot import BreakerSettings, Deployment, ModelRoute, RoutingPolicy
from tollway.llm.catalog import ModelInfo
from tollway.proxy.balancer import Balancers
from tollway.proxy.breaker import CLOSED, HALF_OPEN, OPEN

PROVIDER: Any = object()


def deployment(label: str, weight: int = 1, price: str | None = None, **extra: Any) -> Deployment:
    info = None
    if price is not None:
        info = ModelInfo("openai", label, "chat", 128000, None, Decimal(price), Decimal(price))
    return Deployment(PROVIDER, label, info=info, label=label, weight=weight, **extra)


def route(*deployments: Deployment, strategy: str = "round_robin", **routing: Any) -> ModelRoute:
    return ModelRoute("m", deployments, RoutingPolicy(strategy=strategy, **routing))


def firsts(balancers: Balancers, group: ModelRoute, calls: int, **order: Any) -> Counter[str]:
    return Counter(balancers.order(group, 1000.0, **order)[0].label for _ in range(calls))


def test_round_robin_takes_turns_and_keeps_its_place_across_snapshots() -> None:
    balancers = Balancers()
    group = route(deployment("a"), deployment("b"), deployment("c"))
    picked = [balancers.order(group, 0.0)[0].label for _ in range(4)]
    assert picked == ["a", "b", "c", "a"]
    again = route(deployment("a"), deployment("b"), deployment("c"))
    assert balancers.order(again, 0.0)[0].label == "b"


@pytest.mark.parametrize("weights", [(3, 1), (5, 3, 2), (1, 1, 8)])
def test_weighted_shares_follow_the_weights(weights: tuple[int, ...]) -> None:
    group = route(*(deployment(f"d{i}", w) for i, w in enumerate(weights)), strategy="weighted")
    total = sum(weights) * 200
    counts = firsts(Balancers(), group, total)
    for i, weight in enumerate(weights):
        # Smooth weighted round-robin is exact over whole cycles.
        assert counts[f"d{i}"] == weight * 200


def test_weight_zero_is_a_standby_used_only_behind_the_others() -> None:
    group = route(deployment("main"), deployment("spare", weight=0), strategy="weighted")
    balancers = Balancers()
    assert firsts(balancers, group, 50) == Counter({"main": 50})
    assert [d.label for d in balancers.order(group, 0.0)] == ["main", "spare"]


def test_least_busy_prefers_the_fewest_in_flight() -> None:
    balancers = Balancers()
    a, b = deployment("a"), deployment("b")
    group = route(a, b, strategy="least_busy")
    for _ in range(3):
        balancers.started(group, a, 0.0)
    assert balancers.order(group, 0.0)[0] is b
    for _ in range(4):
        balancers.started(group, b, 0.0)
    assert balancers.order(group, 0.0)[0] is a


def test_lowest_latency_prefers_the_fastest_and_still_explores() -> None:
    balancers = Balancers(seed=7)
    fast, slow = deployment("fast"), deployment("slow")
    group = route(fast, slow, strategy="lowest_latency")
    # Unmeasured deployments are tried first, so every one gets measured.
    assert balancers.order(group, 0.0)[0] is fast
    balancers.started(group, fast, 0.0)
    balancers.finished(group, fast, 0.0, ok=True, latency=0.05)
    assert balancers.order(group, 0.0)[0] is slow
    balancers.started(group, slow, 0.0)
    balancers.finished(group, slow, 0.0, ok=True, latency=0.5)
    counts = firsts(balancers, group, 4000)
    # About 5% explored, half of those land on the slow one: ~2.5%.
    assert 0.01 < counts["slow"] / 4000 < 0.05


def test_cost_picks_the_cheapest_priced_deployment() -> None:
    group = route(
        deployment("dear", price="10"),
        deployment("cheap", price="0.5"),
        deployment("unpriced"),
        strategy="cost",
    )
    assert firsts(Balancers(), group, 10, estimated_tokens=1000) == Counter({"cheap": 10})


def test_usage_picks_the_most_headroom_under_own_limits() -> None:
    balancers = Balancers()
    busy, idle = deployment("busy", rpm=10), deployment("idle", rpm=10)
    group = route(busy, idle, strategy="usage")
    for _ in range(8):
        balancers.started(group, busy, 60.0)
    assert balancers.order(group, 61.0)[0] is idle


def test_a_failing_deployment_is_ejected_then_probed_back() -> None:
    settings = BreakerSettings(consecutive_failures=3, cooldown_s=10.0)
    a, b = deployment("a"), deployment("b")
    group = route(a, b, breaker=settings)
    balancers = Balancers()
    for _ in range(3):
        balancers.started(group, a, 0.0)
        balancers.finished(group, a, 0.0, ok=False)
    assert balancers.state(group, a).breaker.state == OPEN
    # While open, every call goes to b first; a stays at the back as a last resort.
    assert {balancers.order(group, 5.0)[0].label for _ in range(10)} == {"b"}
    assert balancers.order(group, 5.0)[-1] is a
    # After the cooldown, one probe is let through.
    assert a in balancers.order(group, 11.0)[:1] or balancers.order(group, 11.0)[0] is a
    breaker = balancers.state(group, a).breaker
    assert breaker.state == HALF_OPEN
    balancers.started(group, a, 11.0)
    assert not breaker.allows(11.0)  # one probe at a time
    balancers.finished(group, a, 11.5, ok=True, latency=0.1)
    assert breaker.state == CLOSED


def test_a_failed_probe_opens_the_breaker_for_longer() -> None:
    settings = BreakerSettings(consecutive_failures=1, cooldown_s=10.0, max_cooldown_s=25.0)
    a = deployment("a")
    group = route(a, deployment("b"), breaker=settings)
    balancers = Balancers()
    balancers.started(group, a, 0.0)
    balancers.finished(group, a, 0.0, ok=False)
    breaker = balancers.state(group, a).breaker
    assert breaker.allows(10.5)
    balancers.started(group, a, 10.5)
    balancers.finished(group, a, 10.5, ok=False)
    assert breaker.state == OPEN
    assert not breaker.allows(25.0)  # 20 s now, not 10
    assert breaker.allows(31.0)


def test_an_error_rate_opens_the_breaker_too() -> None:
    settings = BreakerSettings(consecutive_failures=100, error_rate=0.5, min_calls=10)
    a = deployment("a")
    group = route(a, deployment("b"), breaker=settings)
    balancers = Balancers()
    for i in range(10):
        balancers.started(group, a, 0.0)
        balancers.finished(group, a, 0.0, ok=i % 2 == 0)
    assert balancers.state(group, a).breaker.state == OPEN


def test_the_retry_budget_bounds_retries_to_a_share_of_calls() -> None:
    balancers = Balancers()
    group = route(deployment("a"), deployment("b"), retry_budget=0.1)
    retries = 0
    for _ in range(1000):
        balancers.earn(group)
        if balancers.spend(group):
            retries += 1
    # 10% of the calls, plus the bank it starts with.
    assert 100 <= retries <= 110


def test_retry_after_holds_a_deployment_back() -> None:
    balancers = Balancers()
    a, b = deployment("a"), deployment("b")
    group = route(a, b)
    balancers.hold(group, a, 30.0)
    assert all(balancers.order(group, 20.0)[0] is b for _ in range(4))
    assert {balancers.order(group, 31.0)[0].label for _ in range(4)} == {"a", "b"}


def test_a_busy_answer_neither_fails_a_deployment_nor_blocks_its_probe() -> None:
    settings = BreakerSettings(consecutive_failures=2, cooldown_s=10.0)
    a = deployment("a")
    group = route(a, deployment("b"), breaker=settings)
    balancers = Balancers()
    breaker = balancers.state(group, a).breaker
    for _ in range(5):  # 429s: busy, not broken
        balancers.started(group, a, 0.0)
        balancers.finished(group, a, 0.0, ok=None)
    assert breaker.state == CLOSED and breaker.consecutive == 0
    for _ in range(2):
        balancers.started(group, a, 0.0)
        balancers.finished(group, a, 0.0, ok=False)
    assert breaker.state == OPEN
    # A probe answered 429 frees its place: the next call may probe.
    assert breaker.allows(10.5)
    balancers.started(group, a, 10.5)
    assert not breaker.allows(10.6)
    balancers.finished(group, a, 10.6, ok=None)
    assert breaker.state == HALF_OPEN and breaker.allows(10.7)


def test_describe_gives_each_deployments_breaker_and_load() -> None:
    a, b = deployment("a"), deployment("b")
    group = route(a, b, breaker=BreakerSettings(consecutive_failures=1, cooldown_s=10.0))
    balancers = Balancers()
    balancers.started(group, a, 0.0)
    balancers.finished(group, a, 0.0, ok=False)
    balancers.started(group, b, 0.0)
    config: Any = type("Config", (), {"models": {"m": group}, "wildcard": None})()
    rows = {row[1]: row for row in balancers.describe(config, now=4.0)}
    assert rows["a"] == ("m", "a", OPEN, 1, 0, 0.0, 6.0)
    assert rows["b"][:5] == ("m", "b", CLOSED, 0, 1)


def test_a_single_deployment_plan_is_made_once_per_route() -> None:
    balancers = Balancers(seed=1)
    group = route(deployment("only"), retries=2)
    plan = balancers.fixed_plan(group)
    assert plan is not None and [a.deployment.label for a in plan] == ["only"] * 3
    plan.pop()  # a call may change its own copy (a fallback inserted): the next is whole
    again = balancers.fixed_plan(group)
    assert again is not None and len(again) == 3 and again[0] is plan[0]
    # A new snapshot's route gets its own plan.
    newer = route(deployment("only"), retries=0)
    fresh = balancers.fixed_plan(newer)
    assert fresh is not None and len(fresh) == 1 and fresh[0].route is newer


@pytest.mark.parametrize(
    "group",
    [
        route(deployment("a"), deployment("b")),
        route(deployment("a"), fallbacks=("other",)),
        route(deployment("a"), client_choice=True),
        route(deployment("a"), context_window_fallback="big"),
    ],
)
def test_no_fixed_plan_when_the_call_can_change_it(group: ModelRoute) -> None:
    assert Balancers(seed=1).fixed_plan(group) is None
