"""Canary and blue-green releases of a REST service through the admin API: a second version
serving a share of the calls beside the published one, its weight changed, promoted, ended;
what the store's state (and so the data plane's snapshot) holds at each step."""

from __future__ import annotations

from typing import Any

from admin_calls import error, fields, models, ok, service, team
from control_plane import Admin


def _rest(client: Any, team_id: int, name: str) -> int:
    created = ok(
        client.post(
            "/services",
            json={"team_id": team_id, "name": name, "kind": "rest", "route_prefix": f"/{name}"},
        ),
        201,
    )
    return int(created["id"])


def _upstream(host: str) -> dict[str, Any]:
    return {"upstream": {"targets": [{"url": f"http://{host}:8000"}]}}


def test_canary_lifecycle(admin: Admin) -> None:
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    sid = _rest(boss, team(admin.root, "a"), "billing")
    base = f"/services/{sid}/versions"
    for host in ("blue", "green", "teal"):
        ok(boss.post(base, json=_upstream(host)), 201)
    # A canary runs beside a published version.
    refused = error(boss.post(f"{base}/2/canary", json={"weight": 10}), 409)
    assert "no published version" in refused["message"]
    ok(boss.post(f"{base}/1/publish"))
    assert "weight" in fields(boss.post(f"{base}/2/canary", json={"weight": 101}))
    assert "weight" in fields(boss.post(f"{base}/2/canary", json={}))
    error(dev.post(f"{base}/2/canary", json={"weight": 10}), 403)
    error(boss.post(f"{base}/1/canary", json={"weight": 10}), 409)
    canary = ok(boss.post(f"{base}/2/canary", json={"weight": 10}))
    assert canary["status"] == "canary" and canary["weight"] == 10
    # Frozen like a published version; one canary at a time.
    assert "only a draft" in error(boss.patch(f"{base}/2", json={"notes": "x"}), 409)["message"]
    assert (
        "is the canary" in error(boss.post(f"{base}/3/canary", json={"weight": 5}), 409)["message"]
    )
    # The published version cannot stop serving under its canary.
    assert "canary beside" in error(boss.post(f"{base}/1/deprecate"), 409)["message"]
    error(boss.post(f"{base}/1/retire"), 409)
    shown = ok(boss.get(f"/services/{sid}"))
    assert (shown["published_version"], shown["canary_version"], shown["canary_weight"]) == (
        1,
        2,
        10,
    )
    state = admin.store.load_state().services[sid]
    assert state.published is not None and state.published.number == 1
    assert state.canary is not None and state.canary.number == 2 and state.canary_weight == 10

    # Ramp up, with the version's ETag; 100 is the blue-green switch without a promotion.
    etag = boss.get(f"{base}/2").headers["etag"]
    assert (
        ok(boss.post(f"{base}/2/canary", json={"weight": 100}, headers={"If-Match": etag}))[
            "weight"
        ]
        == 100
    )
    error(boss.post(f"{base}/2/canary", json={"weight": 50}, headers={"If-Match": etag}), 412)
    assert admin.store.load_state().services[sid].canary_weight == 100

    # Promote: it serves every call, the old one is deprecated and the canary gone.
    promoted = ok(boss.post(f"{base}/2/publish"))
    assert promoted["status"] == "published" and promoted["weight"] is None
    statuses = {v["number"]: v["status"] for v in ok(boss.get(base))["items"]}
    assert statuses == {1: "deprecated", 2: "published", 3: "draft"}
    state = admin.store.load_state().services[sid]
    assert state.canary is None and state.published is not None and state.published.number == 2

    # A deprecated version can be the canary again (a blue-green switch back and forth), and
    # ending the canary deprecates it.
    ok(boss.post(f"{base}/1/canary", json={"weight": 0}))
    assert admin.store.load_state().services[sid].canary_weight == 0
    ended = ok(boss.post(f"{base}/1/deprecate"))
    assert ended["status"] == "deprecated"
    assert admin.store.load_state().services[sid].canary is None
    # A draft's canary can be retired outright.
    ok(boss.post(f"{base}/3/canary", json={"weight": 25}))
    assert ok(boss.post(f"{base}/3/retire"))["status"] == "retired"
    actions = [e["action"] for e in ok(admin.root.get("/audit", params={"limit": 50}))["items"]]
    assert {"start_canary", "canary_weight", "promote", "end_canary"} <= set(actions)


def test_canaries_are_for_rest_services(admin: Admin) -> None:
    models(admin.root, "m1")
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    sid = service(boss, team(admin.root, "a"), "chat", models=["m1"])
    ok(boss.post(f"/services/{sid}/versions", json={"models": ["m1"]}), 201)
    refused = error(boss.post(f"/services/{sid}/versions/2/canary", json={"weight": 5}), 409)
    assert "kind rest" in refused["message"]
