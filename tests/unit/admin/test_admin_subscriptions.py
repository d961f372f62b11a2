"""Subscriptions, approvals, the catalog and the audit log through the admin API."""

from __future__ import annotations

from admin_calls import app, error, fields, models, ok, service, team
from control_plane import Admin


def test_manual_approval_flow(admin: Admin) -> None:
    models(admin.root, "m1")
    owner = admin.client(admin.user("owner", {"a": "team_admin"}))
    owner_viewer = admin.client(admin.user("ov", {"a": "viewer"}))
    dev = admin.client(admin.user("dev", {"b": "developer"}))
    b_viewer = admin.client(admin.user("bv", {"b": "viewer"}))
    sid = service(owner, team(admin.root, "a"), "chat", models=["m1"])
    app_id = app(dev, team(admin.root, "b"), "bot")
    error(b_viewer.post("/subscriptions", json={"app_id": app_id, "service_id": sid}), 403)
    sub = ok(
        dev.post("/subscriptions", json={"app_id": app_id, "service_id": sid, "note": "pls"}), 201
    )
    assert sub["status"] == "pending" and sub["app"] == "b/bot" and sub["service"] == "a/chat"
    error(dev.post("/subscriptions", json={"app_id": app_id, "service_id": sid}), 409)
    path = f"/subscriptions/{sub['id']}"
    # Pending approvals for the owner.
    pending = ok(owner.get("/subscriptions", params={"side": "owner", "status": "pending"}))
    assert [s["id"] for s in pending["items"]] == [sub["id"]]
    assert ok(dev.get("/subscriptions", params={"side": "owner"}))["items"] == []
    # Only the owning team's team admins decide.
    assert "service's team" in error(dev.post(f"{path}/approve"), 403)["message"]
    error(owner_viewer.post(f"{path}/approve"), 403)
    rejected = ok(owner.post(f"{path}/reject", json={"reason": "no budget"}))
    assert rejected["status"] == "rejected" and rejected["reason"] == "no budget"
    error(owner.post(f"{path}/approve"), 409)
    # Re-apply after rejection.
    again = ok(dev.post("/subscriptions", json={"app_id": app_id, "service_id": sid}), 201)
    assert again["id"] == sub["id"] and again["status"] == "pending" and again["reason"] == ""
    assert (
        ok(owner.post(f"{path}/approve", headers={"If-Match": f'"{again["revision"]}"'}))["status"]
        == "approved"
    )
    assert admin.store.load_state().subscription(app_id, sid).status == "approved"  # type: ignore[union-attr]
    error(dev.post(f"{path}/revoke", json={}), 403)
    assert ok(owner.post(f"{path}/revoke", json={"reason": "abuse"}))["status"] == "revoked"
    assert (
        ok(dev.post("/subscriptions", json={"app_id": app_id, "service_id": sid}), 201)["status"]
        == "pending"
    )
    error(owner.post(f"{path}/cancel"), 403)
    assert ok(dev.post(f"{path}/cancel"))["status"] == "cancelled"
    error(dev.post(f"{path}/cancel"), 409)


def test_auto_approval_and_platform_admin_decisions(admin: Admin) -> None:
    models(admin.root, "m1")
    a = team(admin.root, "a")
    auto = service(admin.root, a, "auto", approval="auto", models=["m1"])
    manual = service(admin.root, a, "manual", models=["m1"])
    dev = admin.client(admin.user("dev", {"b": "developer"}))
    app_id = app(dev, team(admin.root, "b"), "bot")
    assert (
        ok(dev.post("/subscriptions", json={"app_id": app_id, "service_id": auto}), 201)["status"]
        == "approved"
    )
    sub = ok(dev.post("/subscriptions", json={"app_id": app_id, "service_id": manual}), 201)
    assert ok(admin.root.post(f"/subscriptions/{sub['id']}/approve"))["status"] == "approved"


def test_subscribing_needs_a_visible_published_service(admin: Admin) -> None:
    models(admin.root, "m1")
    a = team(admin.root, "a")
    private = service(admin.root, a, "priv", visibility="private", models=["m1"])
    draft = service(admin.root, a, "draft", models=["m1"], publish=False)
    dev = admin.client(admin.user("dev", {"b": "developer"}))
    other = admin.client(admin.user("oth", {"c": "developer"}))
    app_id = app(dev, team(admin.root, "b"), "bot")
    assert "service_id" in fields(
        dev.post("/subscriptions", json={"app_id": app_id, "service_id": private})
    )
    assert "service_id" in fields(
        dev.post("/subscriptions", json={"app_id": app_id, "service_id": 9999})
    )
    assert (
        "no published version"
        in error(dev.post("/subscriptions", json={"app_id": app_id, "service_id": draft}), 409)[
            "message"
        ]
    )
    # Someone else's app: unknown.
    assert "app_id" in fields(
        other.post("/subscriptions", json={"app_id": app_id, "service_id": draft})
    )
    # A member of both teams still cannot bring team b's app into team a's private service.
    both = admin.client(admin.user("both", {"a": "developer", "b": "developer"}))
    assert "private to its team" in str(
        fields(both.post("/subscriptions", json={"app_id": app_id, "service_id": private}))
    )


def test_subscriptions_are_seen_by_both_teams_only(admin: Admin) -> None:
    models(admin.root, "m1")
    owner = admin.client(admin.user("owner", {"a": "team_admin"}))
    dev = admin.client(admin.user("dev", {"b": "developer"}))
    third = admin.client(admin.user("third", {"c": "team_admin"}))
    sid = service(owner, team(admin.root, "a"), "chat", models=["m1"])
    app_id = app(dev, team(admin.root, "b"), "bot")
    sub = ok(dev.post("/subscriptions", json={"app_id": app_id, "service_id": sid}), 201)
    ok(owner.get(f"/subscriptions/{sub['id']}"))
    ok(dev.get(f"/subscriptions/{sub['id']}"))
    error(third.get(f"/subscriptions/{sub['id']}"), 404)
    error(third.post(f"/subscriptions/{sub['id']}/approve"), 404)
    assert ok(third.get("/subscriptions"))["items"] == []
    assert len(ok(dev.get("/subscriptions", params={"side": "consumer"}))["items"]) == 1


def test_catalog(admin: Admin) -> None:
    models(admin.root, "m1", "m2")
    a = team(admin.root, "a")
    service(admin.root, a, "pub", models=["m1", "m2"])
    service(admin.root, a, "priv", visibility="private", models=["m1"])
    service(admin.root, a, "draft", models=["m1"], publish=False)
    inside = admin.client(admin.user("in", {"a": "viewer"}))
    outside = admin.client(admin.user("out", {"b": "viewer"}))
    assert {e["name"] for e in ok(inside.get("/catalog"))["items"]} == {"pub", "priv"}
    entries = ok(outside.get("/catalog"))["items"]
    assert [(e["name"], e["models"], e["team"]) for e in entries] == [("pub", ["m1", "m2"], "a")]
    ok(outside.get(f"/catalog/{entries[0]['service_id']}"))
    private_id = ok(inside.get("/services", params={"name": "priv"}))["items"][0]["id"]
    draft_id = ok(inside.get("/services", params={"name": "draft"}))["items"][0]["id"]
    error(outside.get(f"/catalog/{private_id}"), 404)
    error(inside.get(f"/catalog/{draft_id}"), 404)


def test_audit_log(admin: Admin) -> None:
    models(admin.root, "m1")
    owner = admin.client(admin.user("owner", {"a": "team_admin"}))
    outsider = admin.client(admin.user("out", {"b": "team_admin"}))
    sid = service(owner, team(admin.root, "a"), "chat", models=["m1"])
    ok(owner.patch(f"/services/{sid}", json={"description": "hello"}))
    entries = ok(owner.get("/audit", params={"entity_type": "service"}))["items"]
    assert entries[0]["action"] == "update" and entries[0]["actor"] == "owner"
    assert entries[0]["changes"] == {"description": {"from": "", "to": "hello"}}
    assert entries[0]["config_version"] == admin.store.current_version()
    assert {e["action"] for e in entries} >= {"create", "create_version", "publish", "update"}
    assert ok(outsider.get("/audit"))["items"] == [] or all(
        e["team_id"] != entries[0]["team_id"] for e in ok(outsider.get("/audit"))["items"]
    )
    everything = ok(admin.root.get("/audit", params={"limit": 3}))
    assert len(everything["items"]) == 3 and everything["next_before"]
    older = ok(admin.root.get("/audit", params={"before": everything["next_before"]}))
    assert all(e["id"] < everything["next_before"] for e in older["items"])
