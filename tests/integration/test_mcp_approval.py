"""An MCP server put behind the gateway and subscribed to, end to end through the admin API
alone: team `tools` registers an upstream MCP server (written with the `mcp` SDK) as a
service with manual approval, its bearer token given to the admin API (kept sealed, never
shown, found nowhere in the store in the clear), and publishes it (its tools fingerprinted
then); team
`payments`' app subscribes; its agent, an `mcp` SDK client with the app's key, sees none of
the server's tools and is refused at the service's endpoint until a team admin approves,
sees and calls them after, each call recorded, and loses them again when the subscription
is revoked."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_clients import SERVER_TOKEN, Upstream, connect
from servers import Process, free_port, start_gateway

ADMIN_TOKEN = "tollway-test-admin-token-0123456789"
PATIENCE_S = 10.0


@pytest.fixture(scope="module")
def upstream(workdir: Path) -> Iterator[Upstream]:
    server = Upstream(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(workdir: Path) -> Iterator[tuple[Process, httpx.Client, Path]]:
    admin_port = free_port()
    data_dir = workdir / f"store-{free_port()}"
    process = start_gateway(
        workdir,
        None,
        "--data-dir",
        str(data_dir),
        "--admin-port",
        str(admin_port),
        env={"TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN},
        workers=2,
    )
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{admin_port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    yield process, admin, data_dir
    admin.close()
    process.stop()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


async def tool_names(url: str, key: str) -> set[str]:
    names: set[str] = set()
    async for client in connect(url, "auto", key=key):
        names = {t.name for t in (await client.list_tools()).tools}
    return names


def refusal(url: str, key: str) -> tuple[int, str]:
    answer = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {key}"},
    )
    code = answer.json().get("error", {}).get("code") if answer.status_code != 200 else ""
    return answer.status_code, str(code)


async def until(label: str, check: Callable[[], Any]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        if await check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{label}: not in effect after {PATIENCE_S} s")


async def test_an_mcp_service_serves_an_app_only_once_approved(
    gateway: tuple[Process, httpx.Client, Path], upstream: Upstream
) -> None:
    process, admin, data_dir = gateway
    tools_team = ok(admin.post("/teams", json={"name": "tools"}), 201)["id"]
    payments = ok(admin.post("/teams", json={"name": "payments"}), 201)["id"]
    service = ok(
        admin.post(
            "/services",
            json={
                "team_id": tools_team,
                "name": "docs",
                "kind": "mcp",
                "route_prefix": "/tools/docs",
                "visibility": "public",
                "approval": "manual",
            },
        ),
        201,
    )["id"]
    mcp = {"url": upstream.url, "bearer_token": SERVER_TOKEN, "deny": ["admin_*"]}
    ok(admin.post(f"/services/{service}/versions", json={"mcp": mcp}), 201)
    published = ok(admin.post(f"/services/{service}/versions/1/publish"))
    # Publishing asked the server (with the token) for its tools: what is approved is what
    # it offered then.
    assert set(published["mcp"]["tools"]) == {"search", "echo", "fail", "admin_reset"}
    # The token is the gateway's: sealed, never shown, nowhere in the store in the clear.
    assert published["mcp"]["bearer_token"] is None and published["mcp"]["sealed_token"]
    assert SERVER_TOKEN not in json.dumps(published)
    assert SERVER_TOKEN not in json.dumps(ok(admin.get("/audit", params={"limit": 200})))
    stored = [f for f in data_dir.rglob("*") if f.is_file()]
    assert any(f.name == "tollway.db" for f in stored)
    for found in stored:
        assert SERVER_TOKEN.encode() not in found.read_bytes(), found

    app = ok(admin.post("/apps", json={"team_id": payments, "name": "agent"}), 201)["id"]
    key = ok(admin.post(f"/apps/{app}/keys", json={"name": "k"}), 201)["key"]
    everything, own = process.url + "/mcp", process.url + "/tools/docs/mcp"

    async def known() -> bool:
        return refusal(own, key)[0] == 403

    await until("key known", known)
    assert refusal(own, key) == (403, "subscription_required")
    assert await tool_names(everything, key) == set()

    subscription = ok(
        admin.post("/subscriptions", json={"app_id": app, "service_id": service}), 201
    )
    assert subscription["status"] == "pending"

    async def pending() -> bool:
        return refusal(own, key) == (403, "subscription_pending")

    await until("pending", pending)
    assert await tool_names(everything, key) == set()
    listed = ok(admin.get(f"/apps/{app}/mcp"))
    assert listed["services"] == [
        {
            "service_id": service,
            "service": "tools/docs",
            "kind": "mcp",
            "endpoint": "/tools/docs/mcp",
            "subscription": "pending",
        }
    ]

    ok(admin.post(f"/subscriptions/{subscription['id']}/approve"))

    offered = {"docs.search", "docs.echo", "docs.fail"}

    async def approved() -> bool:
        # On fresh connections, so on both workers.
        return all([await tool_names(everything, key) == offered for _ in range(4)])

    await until("approval", approved)
    async for client in connect(own, "legacy", key=key):
        echoed = await client.call_tool("docs.echo", {"text": "approved"})
        assert echoed.content[0].text == "echo: approved"  # type: ignore[union-attr]
    deadline = time.monotonic() + 15
    records: list[dict[str, Any]] = []
    while not records and time.monotonic() < deadline:
        records = ok(admin.get("/analytics/records", params={"model": "docs.echo"}))["items"]
        time.sleep(0.1)
    assert records and records[0]["app_id"] == app and records[0]["service_id"] == service
    assert records[0]["request_bytes"] == len(b'{"text":"approved"}')

    # The app's own deny list, set through the admin API, hides a tool from it.
    app_row = admin.get(f"/apps/{app}")
    patched = admin.patch(
        f"/apps/{app}",
        json={"tools": {"deny": ["docs.fail"]}},
        headers={"If-Match": app_row.headers["etag"]},
    )
    assert ok(patched)["tools"] == {"allow": None, "deny": ["docs.fail"]}

    async def narrowed() -> bool:
        wanted = offered - {"docs.fail"}
        return all([await tool_names(everything, key) == wanted for _ in range(4)])

    await until("tool lists", narrowed)

    ok(admin.post(f"/subscriptions/{subscription['id']}/revoke", json={"reason": "done"}))

    async def revoked() -> bool:
        return await tool_names(everything, key) == set()

    await until("revoked", revoked)
    assert refusal(own, key) == (403, "subscription_revoked")
