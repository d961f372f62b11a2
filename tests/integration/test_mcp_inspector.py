"""The MCP Inspector's CLI (npm @modelcontextprotocol/inspector, on Node 22: installed by
scripts/install-mcp-inspector) as a client of Tollway's MCP endpoint, over Streamable HTTP and
over the older HTTP+SSE transport: it lists the app's prompt APIs as tools, calls one, lists
the documents as resources and renders a prompt."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_clis import installed
from gateways import CLIENT_KEY
from prompt_api_servers import start_prompt_gateway
from servers import Process

TOOLS = {"sentiment", "sentiment-claude", "sloppy", "summarize", "ab"}


@pytest.fixture(scope="module")
def inspector() -> str:
    return installed(
        "mcp-inspector",
        "The MCP Inspector",
        "scripts/install-mcp-inspector",
        "TOLLWAY_SKIP_MCP_INSPECTOR",
    )


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


def inspect(inspector: str, url: str, transport: str, *arguments: str) -> Any:
    done = subprocess.run(
        [
            inspector,
            "--cli",
            url,
            "--transport",
            transport,
            "--header",
            f"Authorization: Bearer {CLIENT_KEY}",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "NO_COLOR": "1"},
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_the_inspector_lists_and_calls_the_app_s_tools(
    inspector: str, gateway: Process, transport: str
) -> None:
    url = gateway.url + "/mcp"
    listed = inspect(inspector, url, transport, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == TOOLS
    called = inspect(
        inspector,
        url,
        transport,
        "--method",
        "tools/call",
        "--tool-name",
        "sentiment",
        "--tool-arg",
        "text=I love it",
    )
    assert called.get("isError") is not True, called
    assert set(called["structuredContent"]) == {"label", "score"}


def test_the_inspector_reads_resources_and_prompts(inspector: str, gateway: Process) -> None:
    url = gateway.url + "/mcp"
    resources = inspect(inspector, url, "http", "--method", "resources/list")
    assert {r["uri"] for r in resources["resources"]} == {
        f"tollway://openapi/{name}" for name in TOOLS
    }
    prompt = inspect(
        inspector,
        url,
        "http",
        "--method",
        "prompts/get",
        "--prompt-name",
        "sentiment",
        "--prompt-args",
        "text=great",
        "language=fr",
    )
    assert prompt["messages"][-1]["content"]["text"] == "Language: fr. Text: great"
