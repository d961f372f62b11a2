"""Apps and their keys through the admin API (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib

from admin_calls import app, error, fields, ok, team
from control_plane import Admin


def test_app_crud_and_roles(admin: Admin) -> None:
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    viewer = admin.client(admin.user("vic", {"a": "viewer"}))
    outsider = admin.client(admin.user("out", {"b": "developer"}))
    a = team(admin.root, "a")
    app_id = app(dev, a, "bot")
    error(dev.post("/apps", json={"team_id": a, "name": "bot"}), 409)
    assert fields(viewer.post("/apps", json={"team_id": a, "name": "x"}), 403) == {}
    # Someone else's team reads as unknown, in the body as in the path.
    assert "team_id" in fields(outsider.post("/apps", json={"team_id": a, "name": "x"}))
    assert "team_id" in fields(dev.post("/apps", json={"team_id": 999, "name": "x"}))
    assert ok(viewer.get(f"/apps/{app_id}"))["name"] == "bot"
    error(viewer.patch(f"/apps/{app_id}", json={"description": "x"}), 403)
    error(outsider.get(f"/apps/{app_id}"), 404)
    error(outsider.delete(f"/apps/{app_id}"), 404)
    assert ok(outsider.get("/apps"))["items"] == []
    assert [x["name"] for x in ok(viewer.get("/apps", params={"team_id": a}))["items"]] == ["bot"]
    ok(dev.patch(f"/apps/{app_id}", json={"name": "robot"}))
    ok(dev.delete(f"/apps/{app_id}"), 204)
    error(dev.get(f"/apps/{app_id}"), 404)


def test_keys_shown_once_with_limits(admin: Admin) -> None:
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    app_id = app(dev, team(admin.root, "a"), "bot")
    created = ok(
        dev.post(
            f"/apps/{app_id}/keys",
            json={
                "name": "prod",
                "models": ["gpt-4o*"],
                "cidrs": ["10.1.0.0/16", "2001:db8::1"],
                "expires_at": "2999-06-01T12:00:00+02:00",
            },
        ),
        201,
    )
    secret = created["key"]
    assert secret.startswith("tw-") and created["prefix"] == secret[:9]
    assert created["cidrs"] == ["10.1.0.0/16", "2001:db8::1/128"]
    assert created["expires_at"] == "2999-06-01T10:00:00Z"
    listed = ok(dev.get(f"/apps/{app_id}/keys"))["items"]
    assert len(listed) == 1 and "key" not in listed[0]
    state = admin.store.load_state()
    assert hashlib.sha256(secret.encode()).digest() in state.keys
    bad = fields(
        dev.post(
            f"/apps/{app_id}/keys",
            json={"name": "x", "cidrs": ["10.0.0.300/8"], "expires_at": "2000-01-02T00:00:00Z"},
        )
    )
    assert set(bad) == {"cidrs"}
    assert "expires_at" in fields(
        dev.post(f"/apps/{app_id}/keys", json={"name": "x", "expires_at": "2001-01-01T00:00:00Z"})
    )
    assert "expires_at" in fields(
        dev.post(f"/apps/{app_id}/keys", json={"name": "x", "expires_at": "1999-01-01T00:00:00Z"})
    )


def test_key_update_revoke_rotate_delete(admin: Admin) -> None:
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    viewer = admin.client(admin.user("vic", {"a": "viewer"}))
    app_id = app(dev, team(admin.root, "a"), "bot")
    key = ok(dev.post(f"/apps/{app_id}/keys", json={"name": "k", "models": ["a"]}), 201)
    path = f"/apps/{app_id}/keys/{key['id']}"
    changed = ok(dev.patch(path, json={"models": None, "name": "k2"}, headers={"If-Match": '"1"'}))
    assert changed["models"] is None and changed["name"] == "k2"
    error(dev.patch(path, json={"name": "k3"}, headers={"If-Match": '"1"'}), 412)
    error(viewer.post(f"{path}/rotate", json={}), 403)
    rotated = ok(dev.post(f"{path}/rotate", json={"overlap_s": 60}), 201)
    assert rotated["rotated_from"] == key["id"] and rotated["key"] != key["key"]
    old = ok(dev.get(path))
    assert old["expires_at"] is not None and old["revoked_at"] is None
    assert "overlap_s" in fields(dev.post(f"{path}/rotate", json={"overlap_s": -1}))
    new_path = f"/apps/{app_id}/keys/{rotated['id']}"
    assert ok(dev.post(f"{new_path}/revoke"))["revoked_at"] is not None
    error(dev.post(f"{new_path}/rotate", json={}), 409)
    error(dev.patch(new_path, json={"name": "x"}), 409)
    live = ok(dev.get(f"/apps/{app_id}/keys", params={"include_revoked": "false"}))["items"]
    assert [k["id"] for k in live] == [key["id"]]
    ok(dev.delete(path), 204)
    error(dev.get(path), 404)


def test_keys_of_another_team_are_invisible(admin: Admin) -> None:
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    other = admin.client(admin.user("oth", {"b": "team_admin"}))
    app_id = app(dev, team(admin.root, "a"), "bot")
    key = ok(dev.post(f"/apps/{app_id}/keys", json={"name": "k"}), 201)
    error(other.get(f"/apps/{app_id}/keys"), 404)
    error(other.get(f"/apps/{app_id}/keys/{key['id']}"), 404)
    error(other.post(f"/apps/{app_id}/keys/{key['id']}/revoke"), 404)
    error(other.post(f"/apps/{app_id}/keys", json={"name": "mine"}), 404)
    # A key id under the wrong app is unknown too.
    other_app = app(other, team(admin.root, "b"), "x")
    error(other.get(f"/apps/{other_app}/keys/{key['id']}"), 404)
