"""Claude Code itself, through `tollway serve`, in front of the shipped mock provider: one model
of each wire format (OpenAI, Anthropic, Gemini), a plain `claude -p` and a tool loop.

Claude Code runs offline as a user would point it at the gateway: `ANTHROPIC_BASE_URL` without
/v1, a client key as `ANTHROPIC_API_KEY`, a throwaway HOME, no retries, and its non-essential
traffic, telemetry and auto-updates off. It sends its full request (some twenty tools, adaptive
thinking, a system message in the middle of the conversation with the
mid-conversation-system beta); the mock's `tool` setting decides which tool, if any, the
model calls. Install it with scripts/install-claude-code; a developer without it may set
TOLLWAY_SKIP_CLAUDE_CODE=1 to skip these tests locally (CI never does).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_clis import installed
from servers import Process, get_json, post, start_gateway, start_mock

# Keys of this module's own gateway and mock, which it starts with settings of its own.
CLIENT_KEY = "sk-claude-code-client"
UPSTREAM_KEY = "sk-claude-code-upstream"
FORMATS = ("openai", "anthropic", "gemini")
MID_CONVERSATION_BETA = "mid-conversation-system-"
NOTE_START = "<system-message>\n"


@pytest.fixture(scope="module")
def claude() -> str:
    return installed(
        "claude", "Claude Code", "scripts/install-claude-code", "TOLLWAY_SKIP_CLAUDE_CODE"
    )


@pytest.fixture(scope="module")
def upstream(workdir: Path) -> Iterator[Process]:
    """A mock of its own: these tests read back everything it received."""
    process = start_mock(workdir, api_key=UPSTREAM_KEY)
    yield process
    process.stop()


def gateway_config(mock_url: str) -> dict[str, Any]:
    providers = {
        "openai": {"type": "openai_compatible", "base_url": mock_url + "/v1"},
        "anthropic": {"type": "anthropic", "base_url": mock_url + "/v1"},
        "gemini": {"type": "gemini", "base_url": mock_url + "/v1beta"},
    }
    models: dict[str, Any] = {}
    for name in FORMATS:
        # The mock answers in text (`tool=none`), or calls Claude Code's Bash tool.
        models[f"{name}-talk"] = {"deployments": [{"provider": name, "model": "talk~tool=none"}]}
        models[f"{name}-bash"] = {"deployments": [{"provider": name, "model": "bash~tool=Bash"}]}
    # Claude Code's own model names (claude-sonnet-..., claude-haiku-... for side tasks, its
    # default when no --model is given): any name not listed above.
    models["*"] = {"deployments": [{"provider": "anthropic", "model": "own-name~tool=none"}]}
    return {
        "providers": {
            name: {**provider, "api_key_env": "MOCK_KEY"} for name, provider in providers.items()
        },
        "models": models,
        "keys": [{"name": "claude-code", "api_key_env": "CLAUDE_CODE_CLIENT_KEY"}],
    }


@pytest.fixture(scope="module")
def gateway(workdir: Path, upstream: Process) -> Iterator[Process]:
    process = start_gateway(
        workdir,
        gateway_config(upstream.url),
        env={"MOCK_KEY": UPSTREAM_KEY, "CLAUDE_CODE_CLIENT_KEY": CLIENT_KEY},
    )
    yield process
    process.stop()


def run_claude(
    claude: str,
    gateway: Process,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    # Only what Claude Code needs, so that nothing of the machine's own setup (a key, a proxy,
    # a settings file in the real HOME) takes part.
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": CLIENT_KEY,
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "60000",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        **(env or {}),
    }
    return subprocess.run(
        [claude, "-p", *args],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def received(upstream: Process) -> list[dict[str, Any]]:
    """The model calls the mock provider received since the last reset."""
    return [r for r in get_json(upstream.url + "/_mock/requests") if "body" in r]


@pytest.fixture
def fresh(upstream: Process) -> Process:
    post(upstream.url + "/_mock/reset")
    return upstream


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


def offered_tools(body: dict[str, Any]) -> set[str]:
    names = set()
    for tool in body.get("tools") or []:
        names.add(tool.get("name") or (tool.get("function") or {}).get("name"))
        names.update(d["name"] for d in tool.get("functionDeclarations") or [])
    return names


def assert_mid_conversation_system_carried(name: str, request: dict[str, Any]) -> None:
    """Claude Code's system message after the first user turn, in the provider's own way."""
    body = request["body"]
    if name == "anthropic":
        # Anthropic's own format: passed on untouched, its beta announced.
        assert "system" in [m["role"] for m in body["messages"]]
        assert MID_CONVERSATION_BETA in request["headers"]["anthropic-beta"]
    elif name == "openai":
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system" and "system" in roles[roles.index("user") :]
    else:  # Gemini: no system role in contents; a marked note in the user turn
        assert {c["role"] for c in body["contents"]} <= {"user", "model"}
        texts = [p.get("text", "") for c in body["contents"] for p in c["parts"]]
        assert any(t.startswith(NOTE_START) for t in texts)


def failure(run: subprocess.CompletedProcess[str], gateway: Process) -> str:
    return (
        f"claude exited {run.returncode}\nstdout: {run.stdout}\nstderr: {run.stderr}\n"
        f"gateway log:\n{gateway.log()[-3000:]}"
    )


@pytest.mark.parametrize("name", FORMATS)
def test_claude_p_says_hello(
    claude: str, gateway: Process, fresh: Process, tmp_path: Path, name: str
) -> None:
    run = run_claude(claude, gateway, tmp_path, "say hello", "--model", f"{name}-talk")
    assert run.returncode == 0, failure(run, gateway)
    assert run.stdout.strip(), failure(run, gateway)
    [request] = received(fresh)
    assert request["model"] == "talk~tool=none"
    assert {"Bash", "Read", "Edit"} <= offered_tools(request["body"])  # all of Claude Code's
    assert_mid_conversation_system_carried(name, request)


@pytest.mark.parametrize("name", FORMATS)
def test_claude_runs_a_tool_loop(
    claude: str, gateway: Process, fresh: Process, tmp_path: Path, name: str
) -> None:
    run = run_claude(
        claude,
        gateway,
        tmp_path,
        "Run the command the tool suggests.",
        "--model",
        f"{name}-bash",
        "--allowedTools",
        "Bash",
    )
    assert run.returncode == 0, failure(run, gateway)
    # The model called Bash with `mock command`; Claude Code ran it and sent the result back,
    # which the model quoted.
    assert run.stdout.startswith("tool said:"), failure(run, gateway)
    assert "mock: command not found" in run.stdout
    first, second = received(fresh)
    assert (first["model"], second["model"]) == ("bash~tool=Bash", "bash~tool=Bash")
    body = second["body"]
    if name == "anthropic":
        [result] = [b for b in body["messages"][-1]["content"] if b["type"] == "tool_result"]
        assert "command not found" in text_of(result["content"])
    elif name == "openai":
        [result] = [m for m in body["messages"] if m["role"] == "tool"]
        assert "command not found" in text_of(result["content"])
    else:
        [result] = [p for c in body["contents"] for p in c["parts"] if "functionResponse" in p]
        assert result["functionResponse"]["name"] == "Bash"


def test_claude_codes_own_model_names_reach_the_wildcard(
    claude: str, gateway: Process, fresh: Process, tmp_path: Path
) -> None:
    run = run_claude(claude, gateway, tmp_path, "say hello")  # Claude Code's default model
    assert run.returncode == 0, failure(run, gateway)
    assert {r["model"] for r in received(fresh)} == {"own-name~tool=none"}


def test_the_client_side_model_variable_picks_a_gateway_model(
    claude: str, gateway: Process, fresh: Process, tmp_path: Path
) -> None:
    run = run_claude(claude, gateway, tmp_path, "say hello", env={"ANTHROPIC_MODEL": "gemini-talk"})
    assert run.returncode == 0, failure(run, gateway)
    [request] = received(fresh)
    assert ":streamGenerateContent" in request["path"]
