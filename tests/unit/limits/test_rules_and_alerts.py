"""Estimates, periods, refusal headers, budget alerts and the limit policies' configuration."""

from __future__ import annotations

import os
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tollway.config.compile import compile_config
from tollway.config.load import ConfigError, validate_config
from tollway.limits.alerts import BudgetAlerts
from tollway.limits.estimate import INLINE_TOKENS, call_tokens
from tollway.limits.periods import period_at
from tollway.limits.refusals import Part, duration
from tollway.limits.rules import BudgetRule, Subject


def test_token_estimates() -> None:
    body = b'{"model":"m","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}'
    assert call_tokens(body, "chat", 1024) == (len(body) // 4 + 1, 300)
    no_max = b'{"model":"m","messages":[]}'
    assert call_tokens(no_max, "chat", 1024)[1] == 1024
    assert call_tokens(no_max, "embeddings", 1024)[1] == 0
    assert call_tokens(no_max, "count_tokens", 1024) == (0, 0)
    image = b'{"url":"data:image/png;base64,' + b"A" * 100_000 + b'"}'
    tokens, _ = call_tokens(image, "chat", 0)
    assert INLINE_TOKENS < tokens < INLINE_TOKENS + 100


def test_periods_are_calendar_aligned_in_the_zone() -> None:
    # 2025-03-30 02:00 in Paris does not exist: that day is 23 hours long.
    paris = ZoneInfo("Europe/Paris")
    day = period_at("day", paris, 1743300000)
    assert day.label == "2025-03-30" and day.end - day.start == 23 * 3600
    week = period_at("week", ZoneInfo("UTC"), 1743300000)
    assert week.label == "2025-03-24"
    month = period_at("month", ZoneInfo("UTC"), 1743300000)
    assert (month.label, month.end) == ("2025-03-01", 1743465600)


def test_reset_durations_in_openais_format() -> None:
    assert [duration(s) for s in (0.02, 1.5, 6.0, 60.0, 361.0)] == [
        "20ms",
        "1.5s",
        "6s",
        "1m0s",
        "6m1s",
    ]


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, int]]] = []

    def event(self, kind: str, payload: Any, **ids: int) -> str:
        self.events.append((kind, dict(payload), ids))
        return "1"


def test_a_budget_alert_is_sent_once_when_its_threshold_is_crossed() -> None:
    rule = BudgetRule("team", None, 10.0, "month", (0.5, 1.0))
    part = Part("budget", "budget", Subject("team", "7", "research"), 10.0, 10.0, 0.0, rule)
    sink = Sink()
    alerts = BudgetAlerts(sink, None)
    alerts.watch("b:team:7:month:", part)
    name = "b:team:7:month:2026-12-01"
    alerts.spent(name, 4.0, 4.9)
    alerts.spent(name, 4.9, 5.2)
    alerts.spent(name, 5.2, 9.0)
    alerts.spent(name, 9.0, 10.5)
    alerts.spent("b:team:8:month:2026-12-01", 9.0, 10.5)  # a team without this rule
    assert [(kind, p["threshold"], ids) for kind, p, ids in sink.events] == [
        ("budget.alert", 0.5, {"team_id": 7, "app_id": 0, "key_id": 0}),
        ("budget.alert", 1.0, {"team_id": 7, "app_id": 0, "key_id": 0}),
    ]


def config(**sections: Any) -> dict[str, Any]:
    return {
        "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"deployments": [{"provider": "p"}]}},
        "keys": [{"name": "k", "key_sha256": "0" * 64}],
        **sections,
    }


def names(raw: dict[str, Any]) -> tuple[str, ...]:
    runtime = compile_config(validate_config(raw, "test"), os.environ)
    return runtime.pipeline.names


def test_limits_join_the_default_chain_after_authentication() -> None:
    rules = {"rules": [{"scope": "key", "requests_per_minute": 5}]}
    budgets = {"rules": [{"scope": "key", "amount_usd": "1"}]}
    assert names(config(rate_limits=rules)) == ("key_auth", "rate_limit")
    assert names(config(rate_limits=rules, budgets=budgets)) == ("key_auth", "rate_limit", "budget")
    # An explicit chain places them, and takes their sections' settings.
    explicit = config(rate_limits=rules, policies=["rate_limit", "key_auth"])
    assert names(explicit) == ("rate_limit", "key_auth")
    with pytest.raises(ConfigError, match="no rate_limit policy"):
        names(config(rate_limits=rules, policies=["key_auth"]))


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"scope": "key"}, "at least one of"),
        ({"scope": "key", "burst": 3, "concurrent": 1}, "burst goes with"),
        ({"scope": "user", "concurrent": 1}, "scope"),
        ({"scope": "key", "concurrent": 0}, "greater than or equal to 1"),
        ({"scope": "key", "concurrent": 1, "window": 3}, "unknown field"),
    ],
)
def test_rate_limit_rules_are_strict(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        validate_config(config(rate_limits={"rules": [rule]}), "test")


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"rules": [{"scope": "service", "amount_usd": "1"}]}, "scope"),
        ({"rules": [{"scope": "team", "amount_usd": "0"}]}, "greater than 0"),
        ({"rules": [{"scope": "team", "amount_usd": "1", "alerts": [1.5]}]}, "fractions"),
        ({"rules": [{"scope": "team", "amount_usd": "1"}], "timezone": "Mars/Olympus"}, "zone"),
    ],
)
def test_budget_settings_are_strict(section: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        validate_config(config(budgets=section), "test")
