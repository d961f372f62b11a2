"""Budgets start their period from the call records' spend (seeded before the fork)."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from tollway.config.compile import compile_config
from tollway.config.load import validate_config
from tollway.config.snapshot import AppRef, ClientKey
from tollway.errors import GatewayError
from tollway.limits.boot import NodeCounters
from tollway.policies.context import RequestContext
from tollway.proxy.http import Request

BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'


def test_a_budget_spent_before_a_restart_stays_spent() -> None:
    asked: list[tuple[str, datetime]] = []

    def spend_since(scope: str, since: datetime) -> dict[int, Decimal]:
        asked.append((scope, since))
        return {42: Decimal("2.50")} if scope == "key" else {}

    counters = NodeCounters(1, None, slots=64)
    assert (
        counters.seed_budgets([("key", "month"), ("team", "day")], ZoneInfo("UTC"), spend_since)
        == 1
    )
    assert [scope for scope, _ in asked] == ["key", "team"]
    assert asked[0][1].day == 1 and asked[0][1].hour == 0  # the month's first midnight

    raw = {
        "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"deployments": [{"provider": "p"}]}},
        "keys": [{"name": "ops", "key_sha256": "0" * 64}],
        "budgets": {"rules": [{"scope": "key", "amount_usd": "2.5"}]},
    }
    runtime = compile_config(validate_config(raw), os.environ, counters=counters.shared)
    route = runtime.routes.exact["/v1/chat/completions"]["POST"]

    def call(key_id: int) -> object:
        request = Request("POST", "/v1/chat/completions", b"", [], BODY, "1.1", True, b"id")
        ctx = RequestContext(request, runtime, route)
        ctx.key = ClientKey.build("k", None, app=AppRef(1, "app", 2, "team"), key_id=key_id)
        ctx.model = "m"
        return route.pipeline.body(ctx)

    refused = call(42)
    assert isinstance(refused, GatewayError) and refused.code == "budget_exceeded"
    assert call(43) is None  # another key's budget is untouched
