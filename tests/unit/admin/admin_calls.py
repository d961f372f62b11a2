"""Small helpers for the admin API tests: check a status and the error shape, and build the
usual fixtures (a provider, models, a service with a published version) through the API."""

from __future__ import annotations

from typing import Any

import httpx

ERROR_KEYS = {"status", "code", "message", "fields"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Asserts the status and the one error shape; returns the error object."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["status"] == status
    return dict(body["error"])


def fields(response: httpx.Response, status: int = 422) -> dict[str, str]:
    return {f["field"]: f["message"] for f in error(response, status)["fields"]}


def models(root: httpx.Client, *names: str) -> None:
    ok(root.post("/providers", json={"name": "mock", "base_url": "http://127.0.0.1:9/v1"}), 201)
    for name in names:
        ok(root.post("/models", json={"name": name, "deployments": [{"provider": "mock"}]}), 201)


def team(root: httpx.Client, name: str) -> int:
    found = ok(root.get("/teams", params={"name": name}))["items"]
    if found:
        return int(found[0]["id"])
    return int(ok(root.post("/teams", json={"name": name}), 201)["id"])


def service(
    client: httpx.Client,
    team_id: int,
    name: str,
    *,
    visibility: str = "public",
    approval: str = "manual",
    models: list[str] | None = None,
    publish: bool = True,
) -> int:
    created = ok(
        client.post(
            "/services",
            json={
                "team_id": team_id,
                "name": name,
                "kind": "ai",
                "route_prefix": f"/{name}",
                "visibility": visibility,
                "approval": approval,
            },
        ),
        201,
    )
    service_id = int(created["id"])
    if models is not None:
        version = ok(client.post(f"/services/{service_id}/versions", json={"models": models}), 201)
        if publish:
            ok(client.post(f"/services/{service_id}/versions/{version['number']}/publish"))
    return service_id


def app(client: httpx.Client, team_id: int, name: str) -> int:
    return int(ok(client.post("/apps", json={"team_id": team_id, "name": name}), 201)["id"])
