"""Upstream MCP servers behind the gateway: a server written with the official `mcp` SDK
(Streamable HTTP, its own sessions, a bearer token only the gateway holds) declared as a
team's service of kind mcp. The app subscribed to it sees its tools under the service's name
at /mcp (and at the service's own endpoint), without those a deny list hides; calls reach the
server with the gateway's token and come back as the server answered; an app that is not
subscribed sees none of it; each call is recorded; a server that restarts and forgets its
sessions is reached again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp import MCPError

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY
from mcp_clients import SERVER_TOKEN, Upstream, connect
from prompt_api_servers import records, start_declared_gateway
from servers import Process

OTHER_KEY = "tw-another-app-key-0123456789abcdef"


@pytest.fixture(scope="module")
def upstream(workdir: Path) -> Iterator[Upstream]:
    server = Upstream(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(workdir: Path, upstream: Upstream) -> Iterator[Process]:
    declared = {
        "teams": {"tools": {}, "apps": {}},
        "apps": {
            "apps": {
                "agent": {"keys": [{"name": "k", "key_sha256": hash_key(CLIENT_KEY)}]},
                "stranger": {"keys": [{"name": "k", "key_sha256": hash_key(OTHER_KEY)}]},
            }
        },
        "services": {
            "tools": {
                "docs": {
                    "kind": "mcp",
                    "route_prefix": "/tools/docs",
                    "visibility": "public",
                    "versions": {
                        1: {
                            "status": "published",
                            "mcp": {
                                "url": upstream.url,
                                "bearer_token_env": "DOCS_MCP_TOKEN",
                                "deny": ["admin_*"],
                            },
                        }
                    },
                }
            }
        },
        "subscriptions": [{"app": "apps/agent", "service": "tools/docs", "status": "approved"}],
    }
    process = start_declared_gateway(workdir, declared, {"DOCS_MCP_TOKEN": SERVER_TOKEN})
    yield process
    process.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_server_s_tools_under_its_service_s_name(gateway: Process, mode: str) -> None:
    async for client in connect(gateway.url + "/mcp", mode):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"docs.search", "docs.echo", "docs.fail"}  # admin_* denied
        assert tools["docs.search"].input_schema["required"] == ["query"]
        assert tools["docs.search"].output_schema is not None
        found = await client.call_tool("docs.search", {"query": "limits", "limit": 3})
        assert found.is_error is False and found.structured_content is not None
        assert [h["title"] for h in found.structured_content["hits"]] == [
            "limits 0",
            "limits 1",
            "limits 2",
        ]
        echoed = await client.call_tool("docs.echo", {"text": "hi"})
        assert echoed.content[0].text == "echo: hi"  # type: ignore[union-attr]
        failed = await client.call_tool("docs.fail", {"reason": "test"})
        assert failed.is_error is True
        assert failed.content[0].text == "Error executing tool fail"  # type: ignore[union-attr]
        with pytest.raises(MCPError) as denied:
            await client.call_tool("docs.admin_reset", {})
        assert denied.value.code == -32602


async def test_the_service_s_own_endpoint_and_an_app_not_subscribed(gateway: Process) -> None:
    async for client in connect(gateway.url + "/tools/docs/mcp", "legacy"):
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"docs.search", "docs.echo", "docs.fail"}
    async for client in connect(gateway.url + "/mcp", "legacy", key=OTHER_KEY):
        assert (await client.list_tools()).tools == []
        with pytest.raises(MCPError):
            await client.call_tool("docs.echo", {"text": "hi"})
    refused = httpx.post(
        gateway.url + "/tools/docs/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "subscription_required"


async def test_each_call_is_recorded_with_its_tool(gateway: Process) -> None:
    async for client in connect(gateway.url + "/mcp", "legacy"):
        await client.call_tool("docs.echo", {"text": "for the record"})
    found = records(gateway, model="docs.echo")
    assert found[0]["status"] == 200 and found[0]["outcome"] == "completed"


async def test_a_server_that_restarts_and_forgets_its_sessions_is_reached_again(
    gateway: Process, upstream: Upstream
) -> None:
    async for client in connect(gateway.url + "/mcp", "legacy"):
        for _ in range(3):  # each worker opens its session with the server
            await client.call_tool("docs.echo", {"text": "before"})
        upstream.stop()
        down = await client.call_tool("docs.echo", {"text": "while down"})
        assert down.is_error is True
        upstream.start()
        for _ in range(3):
            again = await client.call_tool("docs.echo", {"text": "after"})
            assert again.is_error is False, again.content
