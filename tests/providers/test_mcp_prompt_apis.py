"""Tollway as an MCP server, judged by the official `mcp` Python SDK (2.x) as the client, in both
ways it starts a session (its default stateless `server/discover`, and the `initialize`
handshake): the prompt APIs an app is subscribed to are its tools (input schemas, output
schemas, structured results) and its prompts; a tool call is a recorded call of the prompt
API; bad input gets the protocol's own errors and the session goes on."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from gateways import CLIENT_KEY
from prompt_api_servers import ADMIN_TOKEN, start_prompt_gateway
from servers import Process, requests_seen

MODES = ["auto", "legacy"]
TOOLS = {"sentiment", "sentiment-claude", "sloppy", "summarize", "ab"}


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


async def connect(url: str, mode: str, key: str = CLIENT_KEY) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=60)
    )
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_the_app_s_prompt_apis_are_its_tools(gateway: Process, mode: str) -> None:
    async for client in connect(gateway.url + "/mcp", mode):
        assert client.server_info is not None and client.server_info.name == "tollway"
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        sentiment = tools["sentiment"]
        assert sentiment.input_schema["required"] == ["text"]
        assert sentiment.output_schema is not None
        assert sentiment.output_schema["required"] == ["label", "score"]
        assert tools["summarize"].output_schema is None
        result = await client.call_tool("sentiment", {"text": "I love it", "language": "en"})
        assert result.is_error is False
        assert result.structured_content is not None
        assert set(result.structured_content) == {"label", "score"}
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        text = await client.call_tool("summarize", {"text": "a long story"})
        assert text.is_error is False and text.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_prompt_templates_are_its_prompts_and_documents_its_resources(
    gateway: Process, mode: str
) -> None:
    async for client in connect(gateway.url + "/mcp", mode):
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) == TOOLS
        arguments = {a.name: a.required for a in prompts["sentiment"].arguments or []}
        assert arguments == {"text": True, "language": False}
        got = await client.get_prompt("sentiment", {"text": "{{ language }}", "language": "fr"})
        assert [m.role for m in got.messages] == ["user", "user"]
        assert got.messages[-1].content.text == "Language: fr. Text: {{ language }}"  # type: ignore[union-attr]
        # Each prompt API's OpenAPI document is a resource, read as the JSON it is.
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert set(resources) == {f"tollway://openapi/{name}" for name in TOOLS}
        read = await client.read_resource("tollway://openapi/sentiment")
        document = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert document["openapi"].startswith("3.")
        assert "/apis/sentiment" in document["paths"]
        with pytest.raises(MCPError):
            await client.read_resource("tollway://openapi/nothing")


@pytest.mark.parametrize("mode", MODES)
async def test_bad_calls_get_the_protocol_s_errors_and_the_session_goes_on(
    gateway: Process, mock: Process, mode: str
) -> None:
    async for client in connect(gateway.url + "/mcp", mode):
        before = requests_seen(mock)
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nothing", {})
        assert unknown.value.code == -32602 and "Unknown tool" in unknown.value.message
        with pytest.raises(MCPError) as wrong:
            await client.call_tool("sentiment", {"text": 5})
        assert wrong.value.code == -32602 and "$.text" in wrong.value.message
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("sentiment", {})
        assert missing.value.code == -32602
        assert requests_seen(mock) == before  # none of it reached a model
        fine = await client.call_tool("sentiment", {"text": "still here"})
        assert fine.is_error is False


def test_malformed_messages_get_json_rpc_errors(gateway: Process) -> None:
    url = gateway.url + "/mcp"
    key = {"Authorization": f"Bearer {CLIENT_KEY}", "Accept": "application/json, text/event-stream"}
    cases: list[tuple[bytes, int, int]] = [
        (b"{not json", 400, -32700),
        (b"[1, 2]", 400, -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}', 400, -32600),
        (b"x" * (1024 * 1024 + 1), 413, -32600),
    ]
    for body, status, code in cases:
        answer = httpx.post(url, content=body, headers=key)
        assert answer.status_code == status, (body[:40], answer.text)
        assert answer.json()["error"]["code"] == code
    unknown = httpx.post(url, json={"jsonrpc": "2.0", "id": 7, "method": "x/y"}, headers=key)
    assert unknown.status_code == 200
    assert unknown.json() == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32601, "message": "Method not found: x/y"},
    }
    notified = httpx.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=key
    )
    assert notified.status_code == 202 and notified.content == b""
    assert httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}).status_code == 401
    # Streamable HTTP's GET stream (a plain GET is the older SSE transport's: its own tests).
    streamed = {**key, "mcp-protocol-version": "2025-06-18"}
    assert httpx.get(url, headers=streamed).status_code == 405


async def test_a_tool_call_is_a_recorded_call_of_the_prompt_api(gateway: Process) -> None:
    async for client in connect(gateway.url + "/mcp", "auto"):
        result = await client.call_tool("summarize", {"text": "for the record"})
        assert result.is_error is False
    # The record of the tool call: a call of the prompt API, its model and tokens.
    deadline = time.monotonic() + 15
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        records = httpx.get(
            f"http://127.0.0.1:{gateway.admin_port}/admin/v1/analytics/records",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            params={"model": "gpt", "limit": 200},
        ).json()["items"]
        found = [r for r in records if r["request_id"].endswith("-tool")]
        time.sleep(0.1)
    assert found, "no record of the tool call"
    assert found[0]["status"] == 200 and found[0]["input_tokens"] > 0
    assert found[0]["outcome"] == "completed"


async def test_a_service_s_own_endpoint_offers_only_its_tool(gateway: Process) -> None:
    async for client in connect(gateway.url + "/apis/summarize/mcp", "legacy"):
        assert [t.name for t in (await client.list_tools()).tools] == ["summarize"]
        with pytest.raises(MCPError):
            await client.call_tool("sentiment", {"text": "not offered here"})
