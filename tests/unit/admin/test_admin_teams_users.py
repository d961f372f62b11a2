"""Teams, members, users, tokens and login through the admin API (SQLite and PostgreSQL)."""

from __future__ import annotations

from admin_calls import error, fields, ok, team
from control_plane import Admin


def test_team_crud_with_etags(admin: Admin) -> None:
    root = admin.root
    created = root.post("/teams", json={"name": "payments", "description": "money"})
    body = ok(created, 201)
    assert created.headers["location"] == f"/admin/v1/teams/{body['id']}"
    assert created.headers["etag"] == '"1"'
    assert error(root.post("/teams", json={"name": "payments"}), 409)["fields"] == [
        {"field": "name", "message": "a team named 'payments' already exists"}
    ]
    team_id = body["id"]
    stale = root.patch(f"/teams/{team_id}", json={"description": "x"}, headers={"If-Match": '"0"'})
    assert "revision 1" in error(stale, 412)["message"]
    malformed = fields(root.patch(f"/teams/{team_id}", json={}, headers={"If-Match": "junk"}))
    assert "header.if-match" in malformed
    changed = root.patch(
        f"/teams/{team_id}", json={"description": "cash"}, headers={"If-Match": '"1"'}
    )
    assert ok(changed)["description"] == "cash" and changed.headers["etag"] == '"2"'
    assert ok(root.get(f"/teams/{team_id}")) == ok(changed)
    assert ok(root.delete(f"/teams/{team_id}"), 204) is None
    error(root.get(f"/teams/{team_id}"), 404)


def test_team_list_pages_and_filters(admin: Admin) -> None:
    root = admin.root
    for i in range(5):
        team(root, f"t{i}")
    first = ok(root.get("/teams", params={"limit": 2}))
    assert [t["name"] for t in first["items"]] == ["t0", "t1"] and first["next_after"]
    second = ok(root.get("/teams", params={"limit": 2, "after": first["next_after"]}))
    assert [t["name"] for t in second["items"]] == ["t2", "t3"]
    last = ok(root.get("/teams", params={"limit": 2, "after": second["next_after"]}))
    assert [t["name"] for t in last["items"]] == ["t4"] and last["next_after"] is None
    assert [t["name"] for t in ok(root.get("/teams", params={"name": "t3"}))["items"]] == ["t3"]
    assert "query.limit" in fields(root.get("/teams", params={"limit": 0}))


def test_team_roles(admin: Admin) -> None:
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    outsider = admin.client(admin.user("out", {"b": "team_admin"}))
    a = team(admin.root, "a")
    error(boss.post("/teams", json={"name": "new"}), 403)
    ok(boss.patch(f"/teams/{a}", json={"description": "ours"}))
    assert "platform admin" in error(boss.patch(f"/teams/{a}", json={"name": "z"}), 403)["message"]
    assert (
        "team_admin role"
        in error(dev.patch(f"/teams/{a}", json={"description": "x"}), 403)["message"]
    )
    # Another team's team: 404, as if it did not exist.
    error(outsider.get(f"/teams/{a}"), 404)
    error(outsider.patch(f"/teams/{a}", json={"description": "x"}), 404)
    error(outsider.get(f"/teams/{a}/members"), 404)
    assert [t["name"] for t in ok(outsider.get("/teams"))["items"]] == ["b"]
    error(boss.delete(f"/teams/{a}"), 403)


def test_members(admin: Admin) -> None:
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    admin.user("carol")
    a = team(admin.root, "a")
    added = ok(boss.post(f"/teams/{a}/members", json={"user": "carol", "role": "viewer"}), 201)
    assert added["role"] == "viewer"
    error(boss.post(f"/teams/{a}/members", json={"user": "carol", "role": "viewer"}), 409)
    assert "user" in fields(
        boss.post(f"/teams/{a}/members", json={"user": "zed", "role": "viewer"})
    )
    assert "" in fields(boss.post(f"/teams/{a}/members", json={"role": "viewer"}))
    assert "role" in fields(
        boss.post(f"/teams/{a}/members", json={"user": "carol", "role": "owner"})
    )
    carol_id = added["user_id"]
    assert (
        ok(boss.patch(f"/teams/{a}/members/{carol_id}", json={"role": "developer"}))["role"]
        == "developer"
    )
    members = ok(boss.get(f"/teams/{a}/members"))
    assert {(m["user"], m["role"]) for m in members} == {
        ("boss", "team_admin"),
        ("carol", "developer"),
    }
    ok(boss.delete(f"/teams/{a}/members/{carol_id}"), 204)
    error(boss.delete(f"/teams/{a}/members/{carol_id}"), 404)


def test_a_member_may_leave_but_not_remove_others(admin: Admin) -> None:
    viewer_token = admin.user("vic", {"a": "viewer"})
    admin.user("boss", {"a": "team_admin"})
    vic = admin.client(viewer_token)
    a = team(admin.root, "a")
    members = {m["user"]: m["user_id"] for m in ok(vic.get(f"/teams/{a}/members"))}
    error(vic.delete(f"/teams/{a}/members/{members['boss']}"), 403)
    ok(vic.delete(f"/teams/{a}/members/{members['vic']}"), 204)
    error(vic.get(f"/teams/{a}"), 404)


def test_users_and_visibility(admin: Admin) -> None:
    root = admin.root
    created = ok(
        root.post("/users", json={"name": "dana", "password": "long enough", "email": "d@x.io"}),
        201,
    )
    assert created["has_password"] and "password" not in created
    error(root.post("/users", json={"name": "dana"}), 409)
    assert "password" in fields(root.post("/users", json={"name": "eve", "password": "short"}))
    assert "name" in fields(root.post("/users", json={"name": "Upper"}))
    member = admin.client(admin.user("mem", {"a": "viewer"}))
    admin.user("mate", {"a": "developer"})
    error(member.post("/users", json={"name": "x"}), 403)
    names = {u["name"] for u in ok(member.get("/users"))["items"]}
    assert names == {"mem", "mate"}
    error(member.get(f"/users/{created['id']}"), 404)
    error(member.patch(f"/users/{created['id']}", json={"display_name": "x"}), 404)


def test_self_service_and_admin_only_fields(admin: Admin) -> None:
    root = admin.root
    me_id = ok(root.post("/users", json={"name": "fay", "password": "first pass"}), 201)["id"]
    login = ok(
        admin.client(None).post("/auth/login", json={"name": "fay", "password": "first pass"})
    )
    assert login["token"].startswith("twa-") and login["user"]["name"] == "fay"
    fay = admin.client(login["token"])
    assert ok(fay.get("/me"))["user"]["name"] == "fay"
    error(fay.patch(f"/users/{me_id}", json={"platform_role": "admin"}), 403)
    error(fay.patch(f"/users/{me_id}", json={"password": "second pass"}), 403)
    ok(
        fay.patch(
            f"/users/{me_id}", json={"password": "second pass", "current_password": "first pass"}
        )
    )
    error(
        admin.client(None).post("/auth/login", json={"name": "fay", "password": "first pass"}), 401
    )
    ok(admin.client(None).post("/auth/login", json={"name": "fay", "password": "second pass"}))
    ok(fay.patch(f"/users/{me_id}", json={"display_name": "Fay", "email": "f@x.io"}))
    assert ok(fay.patch(f"/users/{me_id}", json={"email": None}))["email"] is None
    ok(root.patch(f"/users/{me_id}", json={"disabled": True}))
    error(fay.get("/me"), 401)


def test_login_failures_look_alike(admin: Admin) -> None:
    anonymous = admin.client(None)
    ok(admin.root.post("/users", json={"name": "gus", "password": "right pass"}), 201)
    wrong = error(anonymous.post("/auth/login", json={"name": "gus", "password": "nope"}), 401)
    unknown = error(anonymous.post("/auth/login", json={"name": "who", "password": "nope"}), 401)
    assert wrong["message"] == unknown["message"]


def test_tokens(admin: Admin) -> None:
    hal = admin.client(admin.user("hal"))
    hal_id = ok(hal.get("/me"))["user"]["id"]
    made = ok(
        hal.post(
            f"/users/{hal_id}/tokens", json={"name": "ci", "expires_at": "2999-01-01T00:00:00Z"}
        ),
        201,
    )
    assert made["token"].startswith("twa-") and made["prefix"] == made["token"][:10]
    assert "expires_at" in fields(
        hal.post(
            f"/users/{hal_id}/tokens", json={"name": "old", "expires_at": "2001-01-01T00:00:00Z"}
        )
    )
    assert "expires_at" in fields(
        hal.post(
            f"/users/{hal_id}/tokens", json={"name": "naive", "expires_at": "2999-01-01T00:00:00"}
        )
    )
    listed = ok(hal.get(f"/users/{hal_id}/tokens"))
    assert {t["name"] for t in listed} == {"test", "ci"} and all("token" not in t for t in listed)
    ci = admin.client(made["token"])
    ok(ci.get("/me"))
    ok(hal.delete(f"/users/{hal_id}/tokens/{made['id']}"), 204)
    error(ci.get("/me"), 401)
    root_id = ok(admin.root.get("/me"))["user"]["id"]
    error(hal.get(f"/users/{root_id}/tokens"), 404)
    ok(admin.root.get(f"/users/{hal_id}/tokens"))


def test_the_last_admin_cannot_be_demoted(admin: Admin) -> None:
    root_id = ok(admin.root.get("/me"))["user"]["id"]
    error(admin.root.patch(f"/users/{root_id}", json={"platform_role": "member"}), 409)
    error(admin.root.delete(f"/users/{root_id}"), 409)
