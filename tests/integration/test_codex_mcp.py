"""Codex CLI as an MCP client of Tollway: `codex exec` with Tollway's /mcp as an MCP server in
its config.toml (`url`, and the app's key from `bearer_token_env_var`, as a user sets it up)
and its model served by the same gateway through the app's ai service. Codex lists the
prompt APIs as tools (`mcp__tollway__<name>` to its model); the model calls `summarize`;
Codex calls it over MCP, Tollway answers it with the prompt API, and the agent's last message
quotes the tool's result. TOLLWAY_SKIP_CODEX=1 skips it on a developer's machine without
Codex (CI never does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_clis import installed
from gateways import CLIENT_KEY
from prompt_api_servers import start_prompt_gateway
from servers import Process, get_json
from test_codex_cli import KEY_VARIABLE, config_toml, run_codex

MCP_KEY_VARIABLE = "TOLLWAY_MCP_KEY"


@pytest.fixture(scope="module")
def codex() -> str:
    return installed("codex", "Codex CLI", "scripts/install-codex", "TOLLWAY_SKIP_CODEX")


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


def test_codex_calls_a_prompt_api_as_an_mcp_tool(
    codex: str, gateway: Process, mock: Process, tmp_path: Path
) -> None:
    config = config_toml(base_url=gateway.url + "/agents/v1") + (
        "\n[mcp_servers.tollway]\n"
        f'url = "{gateway.url}/mcp"\n'
        f'bearer_token_env_var = "{MCP_KEY_VARIABLE}"\n'
    )
    run = run_codex(
        codex,
        tmp_path,
        config,
        "--model",
        "agent",
        "Summarise the story with the tool.",
        env={KEY_VARIABLE: CLIENT_KEY, MCP_KEY_VARIABLE: CLIENT_KEY},
    )
    explained = f"stderr: {run.stderr[-2000:]}\ngateway: {gateway.log()[-2000:]}"
    assert run.returncode == 0, explained
    [call] = run.items("mcp_tool_call")
    assert call["server"] == "tollway" and call["tool"] == "summarize", call
    assert call["status"] == "completed" and call["error"] is None, call
    answer = call["result"]["content"][0]["text"]
    assert answer and run.last_message is not None
    assert run.last_message.startswith("tool said:") and answer in run.last_message, explained
    # The model saw every prompt API the app is subscribed to, as Codex names MCP tools.
    seen = [r for r in get_json(mock.url + "/_mock/requests") if "body" in r]
    offered = {t.get("name") for r in seen for t in r["body"].get("tools") or []}
    assert {"mcp__tollway__summarize", "mcp__tollway__sentiment_claude"} <= offered
