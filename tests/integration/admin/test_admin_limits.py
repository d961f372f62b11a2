"""GET /admin/v1/limits: the configured rate limits and budgets, each budget's spend in its
current period from the call records, scoped to what the caller's teams are concerned by,
on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_records import record, store_records
from tollway.admin.app import create_admin_app
from tollway.admin.routes.limits import Limits
from tollway.admin.server import AdminServer, bind
from tollway.config.models import GatewayConfig
from tollway.limits.periods import period_at
from tollway.policies.budget import BudgetConfig
from tollway.policies.rate_limit import RateLimitConfig
from tollway.store import SYSTEM, Store, apps, keys, services, teams

from control_plane import Admin, backend_params, fresh_admin, shared_store

RATE_LIMITS = {
    "output_tokens_estimate": 512,
    "rules": [
        {"scope": "key", "match": ["alpha/*/batch-*"], "requests_per_minute": 60, "burst": 10},
        {"scope": "key", "requests_per_minute": 600, "tokens_per_minute": 200000},
        {"scope": "team", "match": ["beta"], "concurrent": 5},
        {"scope": "model", "match": ["gpt-4o"], "tokens_per_minute": 2000000, "token_burst": 10},
        {"scope": "service", "match": ["alpha/chat"], "requests_per_minute": 100},
        {"scope": "service", "match": ["beta/secret"], "requests_per_minute": 7},
        {"scope": "service", "match": ["beta/open"], "requests_per_minute": 8},
        {"scope": "app", "match": ["alpha/bot"], "concurrent": 2},
    ],
}
BUDGETS = {
    "timezone": "Europe/Paris",
    "when_counters_unavailable": "allow",
    "webhook": {"url": "https://hooks.example.com/tollway", "headers": {"x-token": "s3cret"}},
    "rules": [
        {"scope": "key", "match": ["*/ci-*"], "amount_usd": "5", "period": "day"},
        {"scope": "team", "match": ["beta"], "amount_usd": "50", "alerts": [0.5]},
        {"scope": "team", "amount_usd": "2", "period": "month", "alerts": [0.5, 0.8, 1.0]},
    ],
}


def configured(rates: dict[str, Any] | None, budgets: dict[str, Any] | None) -> Limits:
    return Limits(
        RateLimitConfig.model_validate(rates) if rates is not None else None,
        BudgetConfig.model_validate(budgets) if budgets is not None else None,
    )


Serve = Callable[[Limits | None], Admin]


@pytest.fixture(scope="module", params=backend_params())
def backend(request: pytest.FixtureRequest) -> Store:
    return shared_store(str(request.param))


@pytest.fixture
def serve(backend: Store) -> Iterator[Serve]:
    """Starts an admin API with the given limits over the emptied store."""
    started: list[Admin] = []

    def start(limits: Limits | None) -> Admin:
        sock = bind("127.0.0.1", 0)
        server = AdminServer(create_admin_app(backend, limits_config=limits), sock=sock)
        server.start_thread()
        admin = fresh_admin(backend, server, f"http://127.0.0.1:{sock.getsockname()[1]}/admin/v1")
        started.append(admin)
        return admin

    yield start
    for admin in started:
        admin.close()
        admin.server.stop()


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


class World:
    """Teams alpha and beta, each with an app and keys, and services; alice reads alpha."""

    def __init__(self, admin: Admin) -> None:
        with admin.store.write(SYSTEM) as tx:
            alpha = teams.create(tx, "alpha")
            beta = teams.create(tx, "beta")
            bot = apps.create(tx, alpha, "bot")
            crawler = apps.create(tx, beta, "crawler")
            self.ci = keys.create(tx, bot, "ci-1")[0].id
            self.prod = keys.create(tx, bot, "prod")[0].id
            self.beta_ci = keys.create(tx, crawler, "ci-2")[0].id
            for team, name, visibility in (
                (alpha, "chat", "private"),
                (beta, "secret", "private"),
                (beta, "open", "public"),
            ):
                services.create(
                    tx, team, name, kind="ai", route_prefix=f"/{name}", visibility=visibility
                )
            self.alpha, self.beta, self.bot, self.crawler = alpha.id, beta.id, bot.id, crawler.id
        self.alice = admin.client(admin.user("alice", {"alpha": "viewer"}))
        self.loner = admin.client(admin.user("loner"))


def period_start(kind: str, zone: str) -> datetime:
    return datetime.fromtimestamp(period_at(kind, ZoneInfo(zone), time.time()).start, UTC)


def in_period(kind: str, zone: str) -> datetime:
    """A moment in the current period, before now (half-way, just after it began)."""
    start, now = period_start(kind, zone), datetime.now(UTC)
    return now - min(timedelta(minutes=2), (now - start) / 2)


def test_nothing_configured_answers_empty_lists(serve: Serve) -> None:
    for limits in (None, Limits()):
        admin = serve(limits)
        body = ok(admin.root.get("/limits"))
        assert body["rate_limits"] == [] and body["budgets"] == []
        assert body["output_tokens_estimate"] is None and body["timezone"] is None
        assert body["when_counters_unavailable"] is None and body["alert_webhook"] is None
        assert abs(datetime.fromisoformat(body["as_of"]).timestamp() - time.time()) < 60


def test_rules_show_every_field(serve: Serve) -> None:
    admin = serve(configured(RATE_LIMITS, BUDGETS))
    world = World(admin)
    body = ok(admin.root.get("/limits"))
    assert body["output_tokens_estimate"] == 512
    rates = body["rate_limits"]
    assert [r["index"] for r in rates] == list(range(8))
    assert rates[0] == {
        "index": 0,
        "scope": "key",
        "match": ["alpha/*/batch-*"],
        "requests_per_minute": 60,
        "burst": 10,
        "tokens_per_minute": None,
        "token_burst": None,
        "concurrent": None,
    }
    # Bursts default to the per-minute numbers.
    assert rates[1]["match"] is None and rates[1]["burst"] == 600
    assert rates[1]["token_burst"] == 200000
    assert rates[2]["concurrent"] == 5 and rates[2]["requests_per_minute"] is None
    assert rates[3]["token_burst"] == 10

    assert body["timezone"] == "Europe/Paris"
    assert body["when_counters_unavailable"] == "allow"
    assert body["alert_webhook"] == "https://hooks.example.com/tollway"
    assert "s3cret" not in str(body)
    budgets = body["budgets"]
    assert [(b["index"], b["scope"], b["period"]) for b in budgets] == [
        (0, "key", "day"),
        (1, "team", "month"),
        (2, "team", "month"),
    ]
    assert budgets[0]["match"] == ["*/ci-*"] and budgets[2]["match"] is None
    assert budgets[0]["amount_usd"] == "5" and budgets[0]["alerts"] == [0.8, 1.0]
    assert budgets[2]["alerts"] == [0.5, 0.8, 1.0]
    paris = ZoneInfo("Europe/Paris")
    start = datetime.fromisoformat(budgets[0]["period_start"])
    end = datetime.fromisoformat(budgets[0]["period_end"])
    assert start.astimezone(paris).hour == 0 and start <= datetime.now(UTC) < end
    assert start.timestamp() == period_start("day", "Europe/Paris").timestamp()
    assert datetime.fromisoformat(budgets[1]["period_start"]).astimezone(paris).day == 1
    # Each key, app or team is under the first rule of its scope that selects it.
    assert [s["name"] for s in budgets[0]["subjects"]] == ["alpha/bot/ci-1", "beta/crawler/ci-2"]
    assert [s["name"] for s in budgets[1]["subjects"]] == ["beta"]
    assert [s["name"] for s in budgets[2]["subjects"]] == ["alpha"]
    assert budgets[2]["subjects"][0] == {
        "id": world.alpha,
        "name": "alpha",
        "team_id": world.alpha,
        "spent_usd": "0",
        "left_usd": "2",
        "used": 0.0,
    }


def test_a_budgets_spend_is_the_records_cost_in_its_period(serve: Serve) -> None:
    admin = serve(configured(None, BUDGETS))
    world = World(admin)
    day, month = in_period("day", "Europe/Paris"), in_period("month", "Europe/Paris")
    before_month = period_start("month", "Europe/Paris") - timedelta(days=1)
    before_day = period_start("day", "Europe/Paris") - timedelta(minutes=1)
    alpha_ci = {"team_id": world.alpha, "app_id": world.bot, "key_id": world.ci}
    alpha_prod = {"team_id": world.alpha, "app_id": world.bot, "key_id": world.prod}
    beta = {"team_id": world.beta, "app_id": world.crawler, "key_id": world.beta_ci}
    store_records(
        admin.store,
        [
            record(1, day, "0.25", **alpha_ci),
            record(2, month, "0.5", **alpha_prod),
            record(3, day, "0.125", **alpha_prod),
            record(4, before_month, "1", **alpha_ci),  # the month before: not counted
            record(5, day, "3.5", **beta),
            record(6, month, "0.001", team_id=0, app_id=0, key_id=0),  # a file key's call
        ],
    )
    in_day = before_day >= period_start("month", "Europe/Paris")
    if in_day:  # the day before, in this month: counted in the month, not in the day
        store_records(admin.store, [record(7, before_day, "0.0625", **alpha_ci)])
    budgets = ok(admin.root.get("/limits"))["budgets"]
    month_alpha = Decimal("0.875") + (Decimal("0.0625") if in_day else 0)
    [alpha] = budgets[2]["subjects"]
    assert Decimal(alpha["spent_usd"]) == month_alpha
    assert Decimal(alpha["left_usd"]) == Decimal(2) - month_alpha
    assert alpha["used"] == pytest.approx(float(month_alpha / 2))
    keys_ = {s["name"]: s for s in budgets[0]["subjects"]}
    assert Decimal(keys_["alpha/bot/ci-1"]["spent_usd"]) == Decimal("0.25")
    assert Decimal(keys_["beta/crawler/ci-2"]["spent_usd"]) == Decimal("3.5")
    # Biggest spenders first.
    assert list(keys_) == ["beta/crawler/ci-2", "alpha/bot/ci-1"]
    assert budgets[1]["subjects"][0]["spent_usd"] == "3.5"

    # Overspent: nothing left, and the fraction goes above 1.
    store_records(admin.store, [record(8, day, "2", **alpha_prod)])
    [alpha] = ok(admin.root.get("/limits"))["budgets"][2]["subjects"]
    assert alpha["left_usd"] == "0" and alpha["used"] > 1

    # `top` bounds the list, not the count.
    first = ok(admin.root.get("/limits", params={"top": 1}))["budgets"][0]
    assert [s["name"] for s in first["subjects"]] == ["beta/crawler/ci-2"]
    assert first["subjects_total"] == 2
    assert admin.root.get("/limits", params={"top": 0}).status_code == 422


def test_others_see_only_the_rules_that_concern_their_teams(serve: Serve) -> None:
    admin = serve(configured(RATE_LIMITS, BUDGETS))
    world = World(admin)
    store_records(
        admin.store,
        [
            record(
                1,
                in_period("day", "Europe/Paris"),
                "0.5",
                team_id=world.beta,
                app_id=world.crawler,
                key_id=world.beta_ci,
            )
        ],
    )
    body = ok(world.alice.get("/limits"))
    # Not beta's team limit, nor beta's private service; the rest concerns alpha or everyone
    # (a key glob selecting none of alpha's keys is left out too: alpha has no batch key).
    assert [r["index"] for r in body["rate_limits"]] == [1, 3, 4, 6, 7]
    assert body["alert_webhook"] is None
    budgets = body["budgets"]
    assert [b["index"] for b in budgets] == [0, 2]
    assert [s["name"] for s in budgets[0]["subjects"]] == ["alpha/bot/ci-1"]
    assert budgets[0]["subjects_total"] == 1
    assert [s["name"] for s in budgets[1]["subjects"]] == ["alpha"]
    assert "beta" not in str(budgets)

    # A user of no team still sees the rules for every one and the models'.
    alone = ok(world.loner.get("/limits"))
    assert [r["index"] for r in alone["rate_limits"]] == [1, 3, 6]
    assert [(b["index"], b["subjects"]) for b in alone["budgets"]] == [(2, [])]


def test_without_a_token_it_is_401(serve: Serve) -> None:
    admin = serve(configured(RATE_LIMITS, BUDGETS))
    for client in (admin.client(None), admin.client("twa-not-a-token")):
        response = client.get("/limits")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_the_endpoint_is_in_the_openapi_document(serve: Serve) -> None:
    admin = serve(None)
    document = ok(admin.client(None).get("/openapi.json"))
    operation = document["paths"]["/admin/v1/limits"]["get"]
    assert operation["tags"] == ["limits"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LimitsOut"
    }
    assert "401" in operation["responses"]
    schemas = document["components"]["schemas"]
    assert {"RateLimitOut", "BudgetOut", "BudgetUse"} <= set(schemas)
    assert "period_end" in schemas["BudgetOut"]["properties"]


def test_the_configuration_gives_its_sections_or_the_chains_inline_settings() -> None:
    sections = GatewayConfig.model_validate({"rate_limits": RATE_LIMITS, "budgets": BUDGETS})
    limits = Limits.of(sections)
    assert limits.rate_limits is not None and len(limits.rate_limits.rules) == 8
    assert limits.budgets is not None and limits.budgets.timezone == "Europe/Paris"

    inline = GatewayConfig.model_validate(
        {"policies": ["key_auth", {"rate_limit": RATE_LIMITS}, {"budget": BUDGETS}]}
    )
    assert Limits.of(inline) == limits
    assert Limits.of(GatewayConfig()) == Limits()
