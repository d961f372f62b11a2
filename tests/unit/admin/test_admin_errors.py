"""Bad input is a 4xx in the one error shape, never a 500; the OpenAPI document."""

from __future__ import annotations

import pytest

from admin_calls import error, fields, ok, team
from control_plane import Admin


def test_authentication(admin: Admin) -> None:
    anonymous = admin.client(None)
    missing = anonymous.get("/teams")
    error(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    error(admin.client("twa-not-a-token").get("/teams"), 401)
    error(anonymous.get("/teams", headers={"Authorization": "Basic dXNlcjpwdw=="}), 401)
    error(admin.client("x" * 5000).get("/teams"), 401)
    assert ok(anonymous.get("/health"))["status"] == "ok"


def test_unknown_routes_and_methods(admin: Admin) -> None:
    root = admin.root
    assert error(root.get("/nothing-here"), 404)["code"] == "not_found"
    response = root.put("/teams")
    assert error(response, 405)["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/teams/0", "team_id"),
        ("/teams/99999999999999999999", "team_id"),
        ("/teams/abc", "team_id"),
        ("/apps?limit=1000", "query.limit"),
        ("/apps?after=-1", "query.after"),
        ("/apps?team_id=99999999999999999999", "query.team_id"),
        ("/services/1/versions/0", "number"),
        ("/audit?before=0", "query.before"),
    ],
)
def test_bad_paths_and_queries_name_the_field(admin: Admin, path: str, expected: str) -> None:
    problems = fields(admin.root.get(path))
    assert any(expected in name for name in problems), problems


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'"a string"',
        b"null",
        b'{"name": 5}',
        b'{"name": "ok", "description": "' + b"x" * 3000 + b'"}',
        b'{"name": "a\\u0000b"}',
        b'{"name": "ok", "description": "\\ud800"}',
    ],
)
def test_bad_bodies_are_422(admin: Admin, body: bytes) -> None:
    response = admin.root.post("/teams", content=body, headers={"Content-Type": "application/json"})
    assert error(response, 422)["code"] == "invalid"


def test_every_problem_is_listed_with_its_field(admin: Admin) -> None:
    problems = fields(
        admin.root.post(
            "/services",
            json={"team_id": "x", "name": "Bad Name", "kind": "soap", "extra": True},
        )
    )
    assert {"team_id", "name", "kind", "route_prefix", "extra"} <= set(problems)
    assert problems["extra"] == "unknown field"


def test_non_json_content_type(admin: Admin) -> None:
    response = admin.root.post(
        "/teams", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    error(response, 422)


def test_if_match_forms(admin: Admin) -> None:
    root = admin.root
    team_id = team(root, "a")
    path = f"/teams/{team_id}"
    ok(root.patch(path, json={"description": "1"}, headers={"If-Match": '"1"'}))
    ok(root.patch(path, json={"description": "2"}, headers={"If-Match": 'W/"2"'}))
    ok(root.patch(path, json={"description": "3"}, headers={"If-Match": "*"}))
    error(root.patch(path, json={"description": "4"}, headers={"If-Match": '"99999999999"'}), 422)
    error(root.patch(path, json={"description": "4"}, headers={"If-Match": '"99"'}), 412)
    error(root.delete(path, headers={"If-Match": '"1"'}), 412)
    ok(root.delete(path, headers={"If-Match": '"4"'}), 204)


def test_openapi_document(admin: Admin) -> None:
    document = ok(admin.client(None).get("/openapi.json"))
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in (
        "/admin/v1/teams",
        "/admin/v1/teams/{team_id}/members",
        "/admin/v1/users",
        "/admin/v1/apps",
        "/admin/v1/apps/{app_id}/keys",
        "/admin/v1/providers",
        "/admin/v1/models",
        "/admin/v1/services",
        "/admin/v1/services/{service_id}/versions",
        "/admin/v1/services/{service_id}/versions/{number}/publish",
        "/admin/v1/services/{service_id}/rollback",
        "/admin/v1/subscriptions",
        "/admin/v1/subscriptions/{subscription_id}/approve",
        "/admin/v1/subscriptions/{subscription_id}/reject",
        "/admin/v1/subscriptions/{subscription_id}/revoke",
        "/admin/v1/catalog",
        "/admin/v1/audit",
    ):
        assert path in paths, path
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    # Write-only secrets are marked so.
    credentials = document["components"]["schemas"]["ProviderCredentials"]["properties"]
    assert credentials["api_key"]["anyOf"][0]["writeOnly"] is True
    error_schema = document["components"]["schemas"]["ErrorBody"]
    assert error_schema["required"] == ["error"]
