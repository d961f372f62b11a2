"""Services, versions and their lifecycle through the admin API."""

from __future__ import annotations

from admin_calls import error, fields, models, ok, service, team
from control_plane import Admin


def test_service_crud_and_who_may(admin: Admin) -> None:
    models(admin.root, "m1")
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    dev = admin.client(admin.user("dev", {"a": "developer"}))
    outsider = admin.client(admin.user("out", {"b": "team_admin"}))
    a = team(admin.root, "a")
    body = {"team_id": a, "name": "chat", "kind": "ai", "route_prefix": "/chat"}
    assert fields(dev.post("/services", json=body), 403) == {}
    assert "team_id" in fields(outsider.post("/services", json=body))
    created = ok(boss.post("/services", json=body), 201)
    assert created["visibility"] == "private" and created["approval"] == "manual"
    assert created["published_version"] is None
    error(boss.post("/services", json=body), 409)
    taken = fields(boss.post("/services", json={**body, "name": "other"}), 409)
    assert "route_prefix" in taken
    for prefix in ("/v1", "/admin/x", "chat", "/a b", "/"):
        assert "route_prefix" in fields(
            boss.post("/services", json={**body, "name": "z", "route_prefix": prefix})
        ), prefix
    assert "kind" in fields(boss.post("/services", json={**body, "name": "z", "kind": "grpc"}))
    path = f"/services/{created['id']}"
    # Private: the team reads it, others do not know it exists.
    ok(dev.get(path))
    error(outsider.get(path), 404)
    error(outsider.patch(path, json={"description": "x"}), 404)
    assert ok(outsider.get("/services"))["items"] == []
    error(dev.patch(path, json={"description": "x"}), 403)
    # Public: others read it but cannot change it.
    ok(boss.patch(path, json={"visibility": "public", "approval": "auto"}))
    assert ok(outsider.get(path))["name"] == "chat"
    error(outsider.patch(path, json={"description": "x"}), 403)
    error(outsider.delete(path), 403)
    assert [s["name"] for s in ok(outsider.get("/services", params={"kind": "ai"}))["items"]] == [
        "chat"
    ]
    ok(boss.delete(path), 204)
    error(boss.get(path), 404)


def test_version_lifecycle(admin: Admin) -> None:
    models(admin.root, "m1", "m2")
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    viewer = admin.client(admin.user("vic", {"a": "viewer"}))
    sid = service(boss, team(admin.root, "a"), "chat", models=None)
    base = f"/services/{sid}/versions"
    assert "models[1]" in fields(boss.post(base, json={"models": ["m1", "zz"]}))
    assert "models" in fields(
        boss.post(base, json={"upstream": {"targets": [{"url": "http://x"}]}})
    )
    assert "models" in fields(boss.post(base, json={"models": []}))
    one = ok(boss.post(base, json={"models": ["m1"], "notes": "first"}), 201)
    assert one["number"] == 1 and one["status"] == "draft"
    error(viewer.post(base, json={"models": ["m1"]}), 403)
    ok(viewer.get(f"{base}/1"))
    edited = ok(boss.patch(f"{base}/1", json={"models": ["m1", "m2"]}, headers={"If-Match": '"1"'}))
    assert edited["models"] == ["m1", "m2"]
    error(viewer.post(f"{base}/1/publish"), 403)
    published = ok(boss.post(f"{base}/1/publish"))
    assert published["status"] == "published" and published["published_at"]
    frozen = error(boss.patch(f"{base}/1", json={"notes": "x"}), 409)
    assert "only a draft can change" in frozen["message"]
    error(boss.delete(f"{base}/1"), 409)
    ok(boss.post(base, json={"models": ["m2"]}), 201)
    ok(boss.post(f"{base}/2/publish"))
    assert ok(boss.get(f"/services/{sid}"))["published_version"] == 2
    statuses = {v["number"]: v["status"] for v in ok(boss.get(base))["items"]}
    assert statuses == {1: "deprecated", 2: "published"}
    # Rollback in one call: 1 serves again, 2 is deprecated.
    assert ok(boss.post(f"/services/{sid}/rollback", json={}))["number"] == 1
    assert ok(boss.get(f"/services/{sid}"))["published_version"] == 1
    error(boss.post(f"/services/{sid}/rollback", json={"version": 7}), 404)
    assert ok(boss.post(f"/services/{sid}/rollback", json={"version": 2}))["number"] == 2
    ok(boss.post(f"{base}/1/retire"))
    error(boss.post(f"/services/{sid}/rollback", json={"version": 1}), 409)
    error(boss.post(f"{base}/1/publish"), 409)
    ok(boss.post(base, json={"models": ["m1"]}), 201)
    ok(boss.delete(f"{base}/3"), 204)
    assert ok(boss.post(f"{base}/2/deprecate"))["status"] == "deprecated"
    assert ok(boss.get(f"/services/{sid}"))["published_version"] is None
    filtered = ok(boss.get(base, params={"status": "retired"}))["items"]
    assert [v["number"] for v in filtered] == [1]


def test_rest_service_versions(admin: Admin) -> None:
    root = admin.root
    a = team(root, "a")
    created = ok(
        root.post(
            "/services",
            json={"team_id": a, "name": "billing", "kind": "rest", "route_prefix": "/billing"},
        ),
        201,
    )
    base = f"/services/{created['id']}/versions"
    upstream = {
        "targets": [{"url": "http://10.0.0.1:8000/api/", "weight": 3}, {"url": "https://b.io"}],
        "headers": {"X-Env": "prod"},
    }
    version = ok(root.post(base, json={"upstream": upstream}), 201)
    assert version["upstream"]["targets"][0]["url"] == "http://10.0.0.1:8000/api"
    assert version["upstream"]["strip_prefix"] is True
    assert "upstream" in fields(root.post(base, json={"models": ["x"]}))
    bad = fields(root.post(base, json={"upstream": {"targets": [{"url": "gopher://x"}]}}))
    assert "upstream.targets[0].url" in bad
    assert "upstream.targets" in fields(root.post(base, json={"upstream": {"targets": []}}))
    ok(root.post(f"{base}/1/publish"))
    served = admin.store.load_state().services[created["id"]]
    assert served.published is not None and served.published.upstream is not None
    assert [t.weight for t in served.published.upstream.targets] == [3, 1]


def test_other_teams_do_not_see_versions(admin: Admin) -> None:
    models(admin.root, "m1")
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    outsider = admin.client(admin.user("out", {"b": "team_admin"}))
    public = service(boss, team(admin.root, "a"), "pub", models=["m1"])
    private = service(boss, team(admin.root, "a"), "priv", visibility="private", models=["m1"])
    error(outsider.get(f"/services/{public}/versions"), 403)
    error(outsider.post(f"/services/{public}/versions", json={"models": ["m1"]}), 403)
    error(outsider.get(f"/services/{private}/versions"), 404)
    error(outsider.get(f"/services/{private}/versions/1"), 404)
    error(outsider.post(f"/services/{private}/rollback", json={}), 404)


def test_a_version_fits_its_models_context(admin: Admin) -> None:
    models(admin.root, "m1", "m2", "cheap")
    boss = admin.client(admin.user("boss", {"a": "team_admin"}))
    sid = service(boss, team(admin.root, "a"), "chat", models=None)
    base = f"/services/{sid}/versions"
    fitted = {"m1": {"max_input_tokens": 8000, "keep_first_turns": 1, "summary_model": "cheap"}}
    one = ok(boss.post(base, json={"models": ["m1", "m2"], "context": fitted}), 201)
    assert one["context"]["m1"]["max_input_tokens"] == 8000
    assert one["context"]["m1"]["summary_model"] == "cheap"
    assert ok(boss.get(f"{base}/1"))["context"] == one["context"]
    # Only models the version grants; only summary models that exist.
    stranger = {"m9": {"max_input_tokens": 10}}
    refused = fields(boss.post(base, json={"models": ["m1"], "context": stranger}))
    assert any("does not grant" in message for message in refused.values()), refused
    unknown = {"m1": {"summary_model": "nowhere"}}
    problems = fields(boss.post(base, json={"models": ["m1"], "context": unknown}))
    assert "context.m1.summary_model" in problems
    # A draft's context changes with PATCH; dropping it goes back to the models' own.
    edited = ok(
        boss.patch(f"{base}/1", json={"context": {"m2": {"select": "relevant"}}}),
    )
    assert set(edited["context"]) == {"m2"} and edited["context"]["m2"]["select"] == "relevant"
    cleared = ok(boss.patch(f"{base}/1", json={"context": None}))
    assert cleared["context"] is None
