"""Claude Code as an MCP client of Tollway: `claude -p` with Tollway's MCP endpoint in its
`--mcp-config` (a key in the server's headers, as a user configures it) and its model served
by the same gateway. The model (the mock's `tool` setting) calls the MCP tool `summarize`;
Claude Code calls it over MCP, Tollway answers it with the prompt API, and the model quotes
the tool's result. Runs offline; TOLLWAY_SKIP_CLAUDE_CODE=1 skips it on a developer's machine
without Claude Code (CI never does)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_clis import installed
from gateways import CLIENT_KEY
from prompt_api_servers import start_prompt_gateway
from servers import Process, get_json


@pytest.fixture(scope="module")
def claude() -> str:
    return installed(
        "claude", "Claude Code", "scripts/install-claude-code", "TOLLWAY_SKIP_CLAUDE_CODE"
    )


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


def test_claude_code_calls_a_prompt_api_as_an_mcp_tool(
    claude: str, gateway: Process, mock: Process, tmp_path: Path
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    servers = {
        "mcpServers": {
            "tollway": {
                "type": "http",
                "url": gateway.url + "/mcp",
                "headers": {"Authorization": f"Bearer {CLIENT_KEY}"},
            }
        }
    }
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        # The model calls go through the app's ai service, under its prefix.
        "ANTHROPIC_BASE_URL": gateway.url + "/agents",
        "ANTHROPIC_API_KEY": CLIENT_KEY,
        "ANTHROPIC_SMALL_FAST_MODEL": "agent-talk",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "agent-talk",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "60000",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    run = subprocess.run(
        [
            claude,
            "-p",
            "Summarise the story with the tool.",
            "--model",
            "agent",
            "--mcp-config",
            json.dumps(servers),
            "--strict-mcp-config",
            "--allowedTools",
            "mcp__tollway__summarize",
        ],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    explained = f"stdout: {run.stdout}\nstderr: {run.stderr}\ngateway: {gateway.log()[-3000:]}"
    assert run.returncode == 0, explained
    # The model quoted the tool's result: the prompt API's answer, made by the mock model.
    assert run.stdout.startswith("tool said:"), explained
    seen = [r for r in get_json(mock.url + "/_mock/requests") if "body" in r]
    summaries = [
        r
        for r in seen
        if r["path"] == "/v1/chat/completions"
        and "Summarise in one line:" in json.dumps(r["body"]["messages"])
    ]
    assert summaries, "the prompt API's model was not called"
    offered = {
        t["name"] for r in seen if r["path"] == "/v1/messages" for t in r["body"].get("tools") or []
    }
    assert "mcp__tollway__summarize" in offered and "mcp__tollway__sentiment" in offered
