"""The analytics API: totals, breakdowns, series, record search and detail, events, and
each service's recording settings and webhooks, tenant-scoped, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from call_records import record, store_records
from tollway.analytics import wire
from tollway.analytics.storage import RecordWriter

from admin_calls import app, error, fields, models, ok, service, team
from control_plane import Admin

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


class World:
    def __init__(self, admin: Admin) -> None:
        root = admin.root
        models(root, "gpt-4o-mini", "gpt-4o")
        self.alpha = team(root, "alpha")
        self.beta = team(root, "beta")
        self.alpha_app = app(root, self.alpha, "a-bot")
        self.beta_app = app(root, self.beta, "b-bot")
        self.alpha_service = service(root, self.alpha, "chat", models=["gpt-4o-mini"])
        self.alice = admin.client(admin.user("alice", {"alpha": "viewer"}))
        self.bob = admin.client(admin.user("bob", {"beta": "developer"}))
        self.carol = admin.client(admin.user("carol", {"alpha": "team_admin"}))
        a, b, s = self.alpha_app, self.beta_app, self.alpha_service
        store_records(
            admin.store,
            [
                # alpha's own app, alpha's own service
                *(
                    record(
                        n,
                        NOW + timedelta(seconds=n),
                        team_id=self.alpha,
                        app_id=a,
                        key_id=1,
                        service_id=s,
                        service_team_id=self.alpha,
                    )
                    for n in range(1, 6)
                ),
                # beta's app calling alpha's service: both teams see it
                record(
                    10,
                    NOW,
                    team_id=self.beta,
                    app_id=self.beta_app,
                    key_id=2,
                    service_id=s,
                    service_team_id=self.alpha,
                    status=500,
                    outcome="upstream_error",
                    cost="0.002",
                ),
                # beta's app on its own (no service): beta only
                *(
                    record(
                        n,
                        NOW - timedelta(hours=3),
                        team_id=self.beta,
                        app_id=b,
                        key_id=2,
                        model="gpt-4o",
                        cost="0.01",
                    )
                    for n in range(20, 23)
                ),
            ],
        )


def window() -> dict[str, str]:
    return {
        "start": (NOW - timedelta(days=1)).isoformat(),
        "end": (NOW + timedelta(hours=1)).isoformat(),
    }


def requests(client: httpx.Client, **params: Any) -> int:
    return int(
        ok(client.get("/analytics/summary", params={**window(), **params}))["stats"]["requests"]
    )


def test_totals_are_scoped_to_the_callers_teams(admin: Admin) -> None:
    world = World(admin)
    assert requests(admin.root) == 9
    assert requests(world.alice) == 6  # alpha's 5, and beta's call to alpha's service
    assert requests(world.bob) == 4  # beta's 3, and its call to alpha's service
    assert requests(world.bob, team_id=world.alpha) == 0
    summary = ok(admin.root.get("/analytics/summary", params=window()))["stats"]
    assert summary["errors"] == 1
    assert summary["cost"] == "0.037"
    assert summary["input_tokens"] == 90 and summary["output_tokens"] == 36
    assert 90 <= summary["latency_ms"]["p50"] <= 110


def test_breakdowns_and_series(admin: Admin) -> None:
    world = World(admin)
    by_app = ok(admin.root.get("/analytics/breakdown", params={**window(), "by": "app"}))
    assert [(g["value"], g["name"], g["stats"]["requests"]) for g in by_app["groups"]] == [
        (world.alpha_app, "alpha/a-bot", 5),
        (world.beta_app, "beta/b-bot", 4),
    ]
    by_model = ok(world.bob.get("/analytics/breakdown", params={**window(), "by": "model"}))
    assert {g["value"]: g["stats"]["requests"] for g in by_model["groups"]} == {
        "gpt-4o": 3,
        "gpt-4o-mini": 1,
    }
    series = ok(
        admin.root.get("/analytics/timeseries", params={**window(), "step": "hour", "by": "status"})
    )
    assert sum(p["stats"]["requests"] for p in series["points"]) == 9
    assert {p["value"] for p in series["points"]} == {200, 500}
    minutes = ok(world.alice.get("/analytics/timeseries", params=window()))
    assert minutes["step"] == "hour"
    assert sum(p["stats"]["requests"] for p in minutes["points"]) == 6


def test_record_search_detail_and_paging(admin: Admin) -> None:
    world = World(admin)
    page = ok(admin.root.get("/analytics/records", params={**window(), "limit": 4}))
    assert len(page["items"]) == 4 and page["next_before"]
    rest = ok(
        admin.root.get(
            "/analytics/records", params={**window(), "limit": 50, "before": page["next_before"]}
        )
    )
    ids = [r["record_id"] for r in page["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 9
    found = ok(world.bob.get("/analytics/records", params={**window(), "request_id": "req-10"}))
    [call] = found["items"]
    assert call["status"] == 500 and call["cost"] == "0.002" and "request_body" not in call
    detail = ok(world.alice.get(f"/analytics/records/{call['record_id']}"))
    assert detail["request_id"] == "req-10" and detail["request_body"] is None
    beta_only = ok(world.bob.get("/analytics/records", params={**window(), "model": "gpt-4o"}))
    hidden = beta_only["items"][0]["record_id"]
    error(world.alice.get(f"/analytics/records/{hidden}"), 404)
    errors = ok(admin.root.get("/analytics/records", params={**window(), "errors": "true"}))
    assert [r["request_id"] for r in errors["items"]] == ["req-10"]
    assert fields(admin.root.get("/analytics/records", params={"before": "nonsense!"}))
    assert fields(
        admin.root.get(
            "/analytics/summary", params={"start": NOW.isoformat(), "end": NOW.isoformat()}
        )
    ) == {"start": "must be before end"}


def test_events_are_scoped(admin: Admin) -> None:
    world = World(admin)
    RecordWriter(admin.store).write(
        [],
        [
            wire.Event("e1", NOW.timestamp(), "budget.alert", {"spent": "9"}, world.alpha, 0, 0),
            wire.Event("e2", NOW.timestamp(), "budget.alert", {"spent": "3"}, world.beta, 0, 0),
        ],
    )
    mine = ok(world.alice.get("/analytics/events", params=window()))
    assert [e["payload"] for e in mine["items"]] == [{"spent": "9"}]
    assert len(ok(admin.root.get("/analytics/events", params=window()))["items"]) == 2


def test_recording_settings_take_a_team_admin(admin: Admin) -> None:
    world = World(admin)
    path = f"/services/{world.alpha_service}/recording"
    assert ok(world.alice.get(path)) == {
        "service_id": world.alpha_service,
        "bodies": False,
        "max_body_bytes": 65536,
        "retention_days": None,
        "redact": [],
        "revision": 0,
    }
    error(world.bob.get(path), 404)
    error(world.alice.put(path, json={"bodies": True}), 403)
    assert fields(world.carol.put(path, json={"bodies": True, "redact": ["(unclosed"]}))
    changed = ok(
        world.carol.put(path, json={"bodies": True, "retention_days": 7, "redact": ["INV-\\d+"]})
    )
    assert changed["bodies"] and changed["retention_days"] == 7
    state = admin.store.load_state()
    recorded = state.services[world.alpha_service].recording
    assert recorded is not None and recorded.bodies and recorded.redact == ("INV-\\d+",)


def test_webhooks_belong_to_a_team_or_the_platform(admin: Admin) -> None:
    world = World(admin)
    body = {"team_id": world.alpha, "name": "alerts", "url": "https://example.com/hook"}
    error(world.alice.post("/webhooks", json=body), 403)
    created = ok(world.carol.post("/webhooks", json={**body, "secret": "s" * 20}), 201)
    assert created["kinds"] == ["budget*"] and created["signed"] and "secret" not in created
    error(world.bob.get(f"/webhooks/{created['id']}"), 404)
    assert ok(world.bob.get("/webhooks"))["items"] == []
    error(world.carol.post("/webhooks", json={**body, "team_id": None}), 403)
    assert fields(world.carol.post("/webhooks", json={**body, "url": "ftp://example.com/x"}))
    ok(admin.root.post("/webhooks", json={**body, "team_id": None, "name": "all"}), 201)
    assert len(ok(admin.root.get("/webhooks"))["items"]) == 2
    patched = ok(world.carol.patch(f"/webhooks/{created['id']}", json={"clear_secret": True}))
    assert not patched["signed"]
    ok(world.carol.delete(f"/webhooks/{created['id']}"), 204)
