"""A REST service's operations as MCP tools, judged by the official `mcp` SDK: a team's REST
service whose published version carries an OpenAPI document offers each operation as a tool
(its parameters and JSON body as the input schema, its answer's schema as the output schema)
to the apps subscribed to it; a call becomes the HTTP request the operation describes, goes
through the service's targets and is recorded; an app's own deny list hides tools from it;
the documents are resources; bad arguments never reach the upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import MCPError

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY
from mcp_clients import connect
from prompt_api_servers import ADMIN_TOKEN, records, start_declared_gateway
from rest_targets import Target
from servers import Process

LIMITED_KEY = "tw-limited-app-key-0123456789abcdef"
STRANGER_KEY = "tw-stranger-app-key-0123456789abcdef"
ECHO = {
    "type": "object",
    "properties": {
        "target": {"type": "string"},
        "method": {"type": "string"},
        "path": {"type": "string"},
        "query": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body_bytes": {"type": "integer"},
    },
    "required": ["target", "method", "path"],
}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Items", "version": "1"},
    "components": {"schemas": {"Echo": ECHO}},
    "paths": {
        "/items/{item_id}": {
            "get": {
                "operationId": "getItem",
                "summary": "Read an item.",
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "the item",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}
                        },
                    }
                },
            }
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}},
                                "required": ["name"],
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "made"}},
            }
        },
        "/status/{code}": {
            "get": {
                "operationId": "status",
                "parameters": [
                    {"name": "code", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {"200": {"description": "as asked"}},
            }
        },
        "/internal": {"get": {"operationId": "internalReset", "responses": {}}},
    },
}
TOOLS = {"items.getItem", "items.createItem", "items.status"}


@pytest.fixture(scope="module")
def target(workdir: Path) -> Iterator[Target]:
    started = Target(workdir, "items").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def gateway(workdir: Path, target: Target) -> Iterator[Process]:
    keys = {
        "agent": CLIENT_KEY,
        "limited": LIMITED_KEY,
        "stranger": STRANGER_KEY,
    }
    apps: dict[str, Any] = {
        name: {"keys": [{"name": "k", "key_sha256": hash_key(key)}]} for name, key in keys.items()
    }
    apps["limited"]["tools"] = {"deny": ["items.create*"]}
    declared = {
        "teams": {"shop": {}, "apps": {}},
        "apps": {"apps": apps},
        "services": {
            "shop": {
                "items": {
                    "kind": "rest",
                    "route_prefix": "/shop/items",
                    "visibility": "public",
                    "versions": {
                        1: {
                            "status": "published",
                            "upstream": {"targets": [{"url": target.url}]},
                            "openapi": {"document": DOCUMENT, "deny": ["internal*"]},
                        }
                    },
                }
            }
        },
        "subscriptions": [
            {"app": "apps/agent", "service": "shop/items", "status": "approved"},
            {"app": "apps/limited", "service": "shop/items", "status": "approved"},
        ],
    }
    process = start_declared_gateway(workdir, declared)
    yield process
    process.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_operations_are_tools_and_calls_are_their_requests(
    gateway: Process, target: Target, mode: str
) -> None:
    async for client in connect(gateway.url + "/mcp", mode):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS  # internalReset denied by the service
        get = tools["items.getItem"]
        assert get.description == "Read an item."
        assert get.input_schema["required"] == ["item_id"]
        assert get.output_schema is not None and get.output_schema["required"] == ECHO["required"]
        assert get.annotations is not None and get.annotations.read_only_hint is True
        assert tools["items.createItem"].annotations.read_only_hint is False  # type: ignore[union-attr]

        read = await client.call_tool(
            "items.getItem", {"item_id": "a b", "verbose": True, "X-Trace": "t-1"}
        )
        assert read.is_error is False, read.content
        answer = read.structured_content
        assert answer is not None and answer["target"] == "items"
        assert (answer["method"], answer["path"]) == ("GET", "/items/a b")
        assert answer["query"] == "verbose=true"
        assert answer["headers"]["x-trace"] == "t-1"
        # The app's key is the gateway's business, never the upstream's; nor are the MCP
        # exchange's own headers, or the encodings its client takes.
        assert "authorization" not in answer["headers"]
        assert not {"accept-encoding", "mcp-protocol-version"} & set(answer["headers"])

        made = await client.call_tool("items.createItem", {"body": {"name": "pen"}})
        assert made.is_error is False
        echoed = json.loads(made.content[0].text)  # type: ignore[union-attr]
        assert (echoed["method"], echoed["body_bytes"]) == ("POST", len(b'{"name":"pen"}'))
        assert echoed["headers"]["content-type"] == "application/json"
        assert made.structured_content is None  # no output schema for it

        missing = await client.call_tool("items.status", {"code": 404})
        assert missing.is_error is True
        assert "answered 404" in missing.content[0].text  # type: ignore[union-attr]


async def test_bad_arguments_are_invalid_params_and_reach_nothing(
    gateway: Process, target: Target
) -> None:
    before = target.stats()
    async for client in connect(gateway.url + "/mcp", "legacy"):
        for name, arguments, said in (
            ("items.getItem", {}, "'item_id' is a required property"),
            ("items.createItem", {"body": {"name": 5}}, "$.body.name: 5 is not of type"),
            ("items.status", {"code": "x"}, "$.code"),
            ("items.getItem", {"item_id": "1", "X-Trace": "a\r\nx-admin: 1"}, "$.X-Trace"),
        ):
            with pytest.raises(MCPError) as refused:
                await client.call_tool(name, arguments)
            assert refused.value.code == -32602
            assert said in str(refused.value)
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("items.internalReset", {})
        assert unknown.value.code == -32602
        assert (await client.call_tool("items.status", {"code": 200})).is_error is False
    after = target.stats()
    assert after.get("/items", 0) == before.get("/items", 0)
    assert after.get("/status/200", 0) == before.get("/status/200", 0) + 1


async def test_the_app_s_own_lists_and_subscriptions_decide_what_it_sees(
    gateway: Process,
) -> None:
    async for client in connect(gateway.url + "/mcp", "legacy", key=LIMITED_KEY):
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == TOOLS - {"items.createItem"}
        # Its document still: some of the service's operations are left to it.
        assert len((await client.list_resources()).resources) == 1
        with pytest.raises(MCPError) as denied:
            await client.call_tool("items.createItem", {"body": {"name": "pen"}})
        assert denied.value.code == -32602
    async for client in connect(gateway.url + "/mcp", "legacy", key=STRANGER_KEY):
        assert (await client.list_tools()).tools == []
        assert (await client.list_resources()).resources == []
    # The service's own endpoint, outside its prefix (which is all the upstream's).
    async for client in connect(gateway.url + "/mcp/shop/items", "auto"):
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["tollway://openapi/items"]
        read = await client.read_resource("tollway://openapi/items")
        assert json.loads(read.contents[0].text) == DOCUMENT  # type: ignore[union-attr]
    refused = httpx.post(
        gateway.url + "/mcp/shop/items",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {STRANGER_KEY}"},
    )
    assert refused.status_code == 403


async def test_each_tool_call_is_a_record_of_the_service(gateway: Process) -> None:
    async for client in connect(gateway.url + "/mcp", "legacy"):
        await client.call_tool("items.status", {"code": 503})
        await client.call_tool("items.createItem", {"body": {"name": "a pencil"}})
    failed = records(gateway, model="items.status", status=503)
    assert failed[0]["outcome"] == "completed" and failed[0]["service_version"] == 1
    made = records(gateway, model="items.createItem", status=200)
    # The size of what the tool was given (its JSON body), as the call's request size.
    assert len(b'{"name":"a pencil"}') in {r["request_bytes"] for r in made}
    assert {r["app_id"] for r in made} == {failed[0]["app_id"]}


def test_the_catalog_shows_the_document_and_the_endpoints(gateway: Process) -> None:
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{gateway.admin_port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with admin:
        entry = next(e for e in admin.get("/catalog").json()["items"] if e["name"] == "items")
        assert entry["mcp"] == "/mcp/shop/items"
        origin = f"http://127.0.0.1:{gateway.admin_port}"
        assert admin.get(origin + entry["openapi"]).json() == DOCUMENT
        agent = next(a for a in admin.get("/apps").json()["items"] if a["name"] == "agent")
        endpoints = admin.get(f"/apps/{agent['id']}/mcp").json()
        assert endpoints == {
            "endpoint": "/mcp",
            "services": [
                {
                    "service_id": entry["service_id"],
                    "service": "shop/items",
                    "kind": "rest",
                    "endpoint": "/mcp/shop/items",
                    "subscription": "approved",
                }
            ],
        }
        limited = next(a for a in admin.get("/apps").json()["items"] if a["name"] == "limited")
        assert limited["tools"] == {"allow": None, "deny": ["items.create*"]}
