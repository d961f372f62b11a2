"""The older HTTP+SSE transport of MCP, for clients that still use it, judged by the official
`mcp` SDK's SSE client: its stream opens at the same endpoints, messages posted to the path
its `endpoint` event names are answered on the stream, whichever of the gateway's workers
takes the post; only the key that opened a stream may post to it; a session that is gone is
said to be; Streamable HTTP's own GET is still refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY
from prompt_api_servers import declared, start_declared_gateway
from servers import Process

OTHER_KEY = "tw-other-app-key-0123456789abcdef"
TOOLS = {"sentiment", "sentiment-claude", "sloppy", "summarize", "ab"}


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    config = declared(mock)
    config["apps"]["ml"]["other"] = {
        "keys": [{"name": "k", "key_sha256": hash_key(OTHER_KEY)}],
        # Its own lists leave it nothing of the one API it is subscribed to.
        "tools": {"deny": ["senti*"]},
    }
    config["subscriptions"].append(
        {"app": "ml/other", "service": "ml/sentiment", "status": "approved"}
    )
    process = start_declared_gateway(workdir, config, {"MOCK_KEY": UPSTREAM_KEY})
    yield process
    process.stop()


async def legacy(url: str, key: str = CLIENT_KEY) -> AsyncIterator[Client]:
    transport = sse_client(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with Client(transport, mode="legacy") as client:
        yield client


async def test_an_sse_client_lists_and_calls_tools(gateway: Process) -> None:
    async for client in legacy(gateway.url + "/mcp"):
        assert client.server_info is not None and client.server_info.name == "tollway"
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        result = await client.call_tool("sentiment", {"text": "I love it"})
        assert result.is_error is False and result.structured_content is not None
        assert set(result.structured_content) == {"label", "score"}
        with pytest.raises(MCPError) as bad:
            await client.call_tool("sentiment", {"text": 5})
        assert bad.value.code == -32602
        # The session goes on after an error.
        assert len((await client.list_prompts()).prompts) == len(TOOLS)
    async for client in legacy(gateway.url + "/apis/sentiment/mcp"):
        assert {t.name for t in (await client.list_tools()).tools} == {"sentiment"}


def test_posts_reach_the_stream_from_any_worker_and_only_its_key(gateway: Process) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.stream("GET", gateway.url + "/mcp", headers=headers, timeout=30) as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        where = next(lines).removeprefix("data: ")
        assert where.startswith("/mcp?session_id=")
        # Each post on a connection of its own: the workers take them in turn.
        for ident in range(8):
            message = {"jsonrpc": "2.0", "id": ident, "method": "ping"}
            posted = httpx.post(gateway.url + where, json=message, headers=headers)
            assert posted.status_code == 202, posted.text
        answers = []
        for line in lines:
            if line.startswith("data: "):
                answers.append(json.loads(line[6:]))
                if len(answers) == 8:
                    break
        assert sorted(a["id"] for a in answers) == list(range(8))
        assert all(a["result"] == {} for a in answers)
        # Another app's key may not post to this session; a session that never was is gone.
        other = httpx.post(
            gateway.url + where,
            json={"jsonrpc": "2.0", "id": 9, "method": "ping"},
            headers={"Authorization": f"Bearer {OTHER_KEY}"},
        )
        assert other.status_code == 403
        assert other.json()["error"]["message"] == "This MCP session belongs to another key."
    gone = httpx.post(
        gateway.url + "/mcp?session_id=1.nothing",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers=headers,
    )
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == -32600


async def test_an_app_s_own_lists_hide_prompts_and_documents_too(gateway: Process) -> None:
    async for client in legacy(gateway.url + "/mcp", key=OTHER_KEY):
        assert (await client.list_tools()).tools == []
        assert (await client.list_prompts()).prompts == []
        assert (await client.list_resources()).resources == []
        with pytest.raises(MCPError):
            await client.get_prompt("sentiment", {"text": "hi"})
        with pytest.raises(MCPError):
            await client.read_resource("tollway://openapi/sentiment")


def test_streamable_http_s_own_get_is_refused(gateway: Process) -> None:
    refused = httpx.get(
        gateway.url + "/mcp",
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "mcp-protocol-version": "2025-11-25"},
    )
    assert refused.status_code == 405
