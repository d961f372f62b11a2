"""Rate limits and budgets on one node: `tollway serve --workers 2`, N calls at once against a
limit L, exactly L admitted (the workers count in one shared table, never split)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from gateways import CLIENT_KEY, UPSTREAM_KEY
from limits_helpers import SECOND_KEY, chat, fire, limited_gateway
from servers import Process, start_mock

# Dear prices for the slow model, so that a budget is spent in a few calls.
PRICES = {"input": Decimal(150), "output": Decimal(600)}
CATALOG = {
    "gpt-4o-mini~latency_ms=1500": {
        "provider": "openai_compatible",
        "context_window": 128000,
        "input": str(PRICES["input"]),
        "output": str(PRICES["output"]),
    }
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_mock(tmp_path_factory.mktemp("limits"), api_key=UPSTREAM_KEY)
    yield process
    process.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_requests_per_minute_admit_exactly_the_limit_across_two_workers(
    workdir: Path, upstream: Process
) -> None:
    rules = [{"scope": "key", "requests_per_minute": 10}]
    gateway = limited_gateway(workdir, upstream, rate_limits={"rules": rules})
    try:
        # 10 a minute refill one every 6 s: the burst of 40 falls well inside that.
        results = fire([gateway.url], 40, chat())
        assert results.statuses == {200: 10, 429: 30}
        # Each admitted answer says how much room was left after it: one fewer each time.
        admitted = results.of(200)
        assert {a.headers["x-ratelimit-limit-requests"] for a in admitted} == {"10"}
        left = sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in admitted)
        assert left == list(range(10))
        refused = results.of(429)[0]
        assert int(refused.headers["retry-after"]) >= 1
        assert int(refused.headers["retry-after-ms"]) > 0
        assert refused.headers["x-ratelimit-limit-requests"] == "10"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-reset-requests"]
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.json()["error"]["type"] == "rate_limit_error"
        # Another key has counters of its own.
        assert fire([gateway.url], 3, chat(), key=SECOND_KEY).statuses == {200: 3}
        # Anthropic clients get Anthropic's error format.
        anthropic = fire(
            [gateway.url],
            1,
            chat(),
            path="/v1/messages",
            headers={"anthropic-version": "2023-06-01"},
        ).answers[0]
        assert anthropic.status_code == 429
        assert anthropic.json()["type"] == "error"
        assert anthropic.json()["error"]["type"] == "rate_limit_error"
        assert anthropic.headers["retry-after"]
    finally:
        gateway.stop()


def test_a_burst_allowance_smaller_than_the_minute(workdir: Path, upstream: Process) -> None:
    rules = [{"scope": "key", "requests_per_minute": 6, "burst": 2}]
    gateway = limited_gateway(workdir, upstream, rate_limits={"rules": rules})
    try:
        assert fire([gateway.url], 10, chat()).statuses == {200: 2, 429: 8}
    finally:
        gateway.stop()


def test_tokens_per_minute_reserve_an_estimate_then_settle_with_the_usage(
    workdir: Path, upstream: Process
) -> None:
    rules = [{"scope": "model", "match": ["slow"], "tokens_per_minute": 700}]
    gateway = limited_gateway(workdir, upstream, rate_limits={"rules": rules})
    try:
        body = chat("slow", max_tokens=100, text="count to three")
        # The estimate: a token per 4 bytes of body, plus max_tokens (89 bytes: 123 a call).
        size = len(httpx.Request("POST", "http://x", json=body).content)
        estimate = size // 4 + 1 + 100
        assert estimate == 123
        # Slow calls: none settles before all are decided. 700 // 123 = 5 admitted.
        results = fire([gateway.url], 20, body)
        assert results.statuses == {200: 5, 429: 15}
        refused = results.of(429)[0]
        assert refused.headers["x-ratelimit-limit-tokens"] == "700"
        assert "tokens" in refused.json()["error"]["message"]
        # Settled: each call used far fewer tokens than reserved, so the room is back.
        used = sum(r.json()["usage"]["total_tokens"] for r in results.of(200))
        assert used < 5 * estimate
        again = fire([gateway.url], 20, body)
        # (The bucket refills 11.7 tokens a second meanwhile: at most one call more.)
        assert (700 - used) // estimate <= again.statuses[200] <= (700 - used) // estimate + 1
    finally:
        gateway.stop()


def test_concurrency_is_held_until_each_call_ends(workdir: Path, upstream: Process) -> None:
    rules = [{"scope": "key", "concurrent": 3}]
    gateway = limited_gateway(workdir, upstream, rate_limits={"rules": rules})
    try:
        results = fire([gateway.url], 12, chat("slow"))
        assert results.statuses == {200: 3, 429: 9}
        refused = results.of(429)[0]
        assert refused.json()["error"]["code"] == "concurrency_limit_exceeded"
        assert refused.headers["retry-after"] == "1"
        # Released whatever the outcome: completed calls...
        assert fire([gateway.url], 3, chat("slow")).statuses == {200: 3}
        # ...and calls whose client went away mid-call.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                gateway.url + "/v1/chat/completions",
                json=chat("slow"),
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
                timeout=0.3,
            )
        time.sleep(0.3)
        assert fire([gateway.url], 3, chat("slow")).statuses == {200: 3}
    finally:
        gateway.stop()


def test_a_call_refused_by_one_limit_takes_nothing_from_the_others(
    workdir: Path, upstream: Process
) -> None:
    rules = [
        {"scope": "key", "requests_per_minute": 6, "concurrent": 2},
        {"scope": "model", "requests_per_minute": 100},
    ]
    gateway = limited_gateway(workdir, upstream, rate_limits={"rules": rules})
    try:
        # 10 at once: 2 admitted, 8 refused by the concurrency limit...
        assert fire([gateway.url], 10, chat("slow")).statuses == {200: 2, 429: 8}
        # ...which took nothing from the per-minute limit: 4 of its 6 are left.
        results = sequential_statuses(gateway, 6)
        assert results == [200, 200, 200, 200, 429, 429]
    finally:
        gateway.stop()


def sequential_statuses(gateway: Process, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        response = httpx.post(
            gateway.url + "/v1/chat/completions",
            json=chat(),
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            timeout=10,
        )
        statuses.append(response.status_code)
    return statuses


def test_budget_overshoot_is_bounded_by_the_calls_in_flight(
    workdir: Path, upstream: Process
) -> None:
    budget = Decimal("0.05")
    budgets = {"rules": [{"scope": "key", "amount_usd": str(budget), "period": "day"}]}
    gateway = limited_gateway(workdir, upstream, budgets=budgets, catalog=CATALOG)
    try:
        spent = Decimal(0)
        costs = []
        body = chat("slow", max_tokens=20)
        for _round in range(4):
            results = fire([gateway.url], 20, body)
            for answer in results.of(200):
                usage = answer.json()["usage"]
                cost = (
                    usage["prompt_tokens"] * PRICES["input"]
                    + usage["completion_tokens"] * PRICES["output"]
                ) / 1_000_000
                costs.append(cost)
                spent += cost
            refused = results.of(429)
            if refused:
                assert refused[0].json()["error"]["code"] == "budget_exceeded"
                assert int(refused[0].headers["retry-after"]) >= 1
            if not results.of(200):
                break
        assert costs, "no call was admitted"
        # 20 calls at a time against a budget of about 4 calls: the overshoot is at most one
        # call's cost (each call reserved its estimate, an upper bound with max_tokens set).
        assert spent >= budget
        assert spent - budget <= max(costs)
        # Spent: nothing starts any more.
        assert fire([gateway.url], 5, body).statuses == {429: 5}
    finally:
        gateway.stop()
