"""OpenAI's Codex CLI itself, through `tollway serve`, in front of the shipped mock provider:
`codex exec` on one model of each wire format (OpenAI-compatible, passed through; Anthropic and
Gemini, translated from the Responses API), a shell tool loop, a freeform `apply_patch` loop,
Codex's own model names and default tools, and Codex's built-in `openai` provider.

Codex runs offline as a user would point it at the gateway: a custom model provider in a
throwaway CODEX_HOME/config.toml (`base_url` = the gateway's /v1, `wire_api = "responses"`,
`env_key` naming the variable that holds a client key, WebSockets off, no retries), a throwaway
HOME, update checks, analytics, feedback and history off, a read-only sandbox, a working
directory of its own. It sends its full request (a dozen function tools, the sub-agent tools as
a `namespace`, `apply_patch` as a freeform `custom` tool on the models it knows, `store: false`
with the whole history each turn); the mock's `tool` setting, a suffix of the upstream model
name, decides which tool, if any, the model calls. Install it with scripts/install-codex; a
developer without it may set TOLLWAY_SKIP_CODEX=1 to skip these tests locally (CI never does).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tollway.testing import mock_anthropic, mock_gemini, mock_responses
from tollway.testing.mock_faults import FaultSpec, split_model
from tollway.testing.mock_openai import reply_words
from tollway.testing.mock_reply import plan

from agent_clis import installed
from servers import HOST, Process, get_json, post, start_gateway, start_mock

# Keys of this module's own gateway and mock, which it starts with settings of its own.
CLIENT_KEY = "sk-codex-client"
UPSTREAM_KEY = "sk-codex-upstream"
# The variable Codex's custom provider reads the client key from (its `env_key`).
KEY_VARIABLE = "TOLLWAY_CODEX_KEY"
FORMATS = ("openai", "anthropic", "gemini")
TRANSLATED = ("anthropic", "gemini")
PROMPT = "say hello"


@pytest.fixture(scope="module")
def codex() -> str:
    return installed("codex", "Codex CLI", "scripts/install-codex", "TOLLWAY_SKIP_CODEX")


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
        # The mock answers in text (`tool=none`), or calls Codex's shell tool.
        models[f"{name}-talk"] = {"deployments": [{"provider": name, "model": "talk~tool=none"}]}
        models[f"{name}-shell"] = {
            "deployments": [{"provider": name, "model": "shell~tool=exec_command"}]
        }
    for name in TRANSLATED:
        # A name Codex takes for its gpt-5.5 (it matches its catalog by prefix), on which it
        # offers `apply_patch` as a freeform (custom) tool; the mock calls it.
        models[f"gpt-5.5-{name}"] = {
            "deployments": [{"provider": name, "model": "patch~tool=apply_patch"}]
        }
    models["gpt-5.5-talk"] = {"deployments": [{"provider": "anthropic", "model": "talk~tool=none"}]}
    # Codex's own model names (its default when no model is given): any name not listed above.
    models["*"] = {"deployments": [{"provider": "anthropic", "model": "own-name~tool=none"}]}
    return {
        "providers": {
            name: {**provider, "api_key_env": "MOCK_KEY"} for name, provider in providers.items()
        },
        "models": models,
        "keys": [{"name": "codex", "api_key_env": "CODEX_CLIENT_KEY"}],
    }


@pytest.fixture(scope="module")
def gateway(workdir: Path, upstream: Process) -> Iterator[Process]:
    process = start_gateway(
        workdir,
        gateway_config(upstream.url),
        "--access-log",
        env={"MOCK_KEY": UPSTREAM_KEY, "CODEX_CLIENT_KEY": CLIENT_KEY},
    )
    yield process
    process.stop()


@pytest.fixture
def fresh(upstream: Process) -> Process:
    post(upstream.url + "/_mock/reset")
    return upstream


def config_toml(*, base_url: str, builtin: bool = False, web_search: bool = False) -> str:
    """CODEX_HOME/config.toml: a custom provider for the gateway, or (`builtin`) Codex's own
    `openai` provider pointed at it."""
    lines = [
        # Off unless a test asks for Codex's default (a `web_search` tool in every request).
        *([] if web_search else ['web_search = "disabled"']),
        "check_for_update_on_startup = false",
    ]
    if builtin:
        lines += [f'openai_base_url = "{base_url}"']
    else:
        lines += ['model_provider = "tollway"']
    lines += [
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[feedback]",
        "enabled = false",
        "",
        "[history]",
        'persistence = "none"',
    ]
    if not builtin:
        lines += [
            "",
            "[model_providers.tollway]",
            'name = "Tollway"',
            f'base_url = "{base_url}"',
            'wire_api = "responses"',
            f'env_key = "{KEY_VARIABLE}"',
            # Straight to POST /v1/responses (the built-in provider tries a WebSocket first).
            "supports_websockets = false",
            "request_max_retries = 0",
            "stream_max_retries = 0",
            "stream_idle_timeout_ms = 60000",
        ]
    return "\n".join(lines) + "\n"


class CodexRun:
    def __init__(self, run: subprocess.CompletedProcess[str], last: Path, elapsed_s: float):
        self.returncode = run.returncode
        self.stdout = run.stdout
        self.stderr = run.stderr
        self.elapsed_s = elapsed_s
        # `--json`: one event a line (thread.started, item.completed, turn.completed...).
        self.events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        # `--output-last-message`: the agent's final message, as a user reads it.
        self.last_message = last.read_text() if last.exists() else None

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            e["item"]
            for e in self.events
            if e.get("type") == "item.completed" and e["item"].get("type") == kind
        ]


def run_codex(
    codex: str,
    tmp_path: Path,
    config: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
) -> CodexRun:
    home = tmp_path / "home"
    codex_home = tmp_path / "codex-home"
    work = tmp_path / "work"
    for folder in (home, codex_home, work):
        folder.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(config)
    last = tmp_path / "last-message.txt"
    # Only what Codex needs, so that nothing of the machine's own setup (a key, a proxy, a
    # config.toml or login in the real HOME) takes part.
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        KEY_VARIABLE: CLIENT_KEY,
        "NO_PROXY": "127.0.0.1,localhost",
        **(env or {}),
    }
    command = [
        codex,
        "exec",
        "--strict-config",  # a key this version does not know fails, not silently ignored
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        "read-only",
        "--cd",
        str(work),
        "--color",
        "never",
        "--json",
        "--output-last-message",
        str(last),
        *args,
    ]
    started = time.monotonic()
    run = subprocess.run(
        command,
        cwd=work,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return CodexRun(run, last, time.monotonic() - started)


def received(upstream: Process) -> list[dict[str, Any]]:
    """The model calls the mock provider received since the last reset."""
    return [r for r in get_json(upstream.url + "/_mock/requests") if "body" in r]


def mock_answer(request: dict[str, Any]) -> str:
    """The text the mock answered a recorded request with: its reply is decided by
    tollway.testing.mock_reply from the request alone (the words follow the last user text)."""
    path = request["path"]
    wire = (
        mock_anthropic
        if path.endswith("/messages")
        else mock_gemini
        if "GenerateContent" in path
        else mock_responses
    )
    _, settings = split_model(request["model"])
    return plan(wire.ask(request["body"]), FaultSpec().merged(settings), "call").text


def offered_tools(body: dict[str, Any]) -> set[str]:
    """Tool names in any of the three formats (Responses, Anthropic, Gemini)."""
    names = set()
    for tool in body.get("tools") or []:
        names.add(tool.get("name") or (tool.get("function") or {}).get("name"))
        names.update(d["name"] for d in tool.get("functionDeclarations") or [])
    names.discard(None)
    return names


def provider_path(name: str, request: dict[str, Any]) -> None:
    """The call reached the mock in the provider's own format."""
    if name == "openai":
        assert request["path"] == "/v1/responses"  # passed through as it is
    elif name == "anthropic":
        assert request["path"] == "/v1/messages"
    else:
        assert request["path"].endswith(":streamGenerateContent"), request["path"]


def tool_results(name: str, body: dict[str, Any]) -> list[str]:
    """The tool results the last turn sent back, in the provider's own format."""
    if name == "openai":
        return [
            str(item["output"])
            for item in body["input"]
            if item.get("type") in ("function_call_output", "custom_tool_call_output")
        ]
    if name == "anthropic":
        blocks = [b for b in body["messages"][-1]["content"] if b["type"] == "tool_result"]
        return [
            b["content"]
            if isinstance(b["content"], str)
            else "".join(part.get("text", "") for part in b["content"])
            for b in blocks
        ]
    parts = [p for p in body["contents"][-1]["parts"] if "functionResponse" in p]
    return [json.dumps(p["functionResponse"]) for p in parts]


def failure(run: CodexRun, gateway: Process) -> str:
    return (
        f"codex exited {run.returncode} after {run.elapsed_s:.1f} s\nstdout: {run.stdout[-4000:]}"
        f"\nstderr: {run.stderr[-3000:]}\ngateway log:\n{gateway.log()[-3000:]}"
    )


def custom_provider(gateway: Process, **options: bool) -> str:
    return config_toml(base_url=gateway.url + "/v1", **options)


@pytest.mark.parametrize("name", FORMATS)
def test_codex_exec_gets_the_models_answer(
    codex: str, gateway: Process, fresh: Process, tmp_path: Path, name: str
) -> None:
    run = run_codex(codex, tmp_path, custom_provider(gateway), "--model", f"{name}-talk", PROMPT)
    assert run.returncode == 0, failure(run, gateway)
    [request] = received(fresh)
    assert request["model"] == "talk~tool=none"
    provider_path(name, request)
    # Codex's final message is the mock's answer, word for word.
    answer = mock_answer(request)
    assert len(answer.split()) == 50
    assert run.last_message == answer, failure(run, gateway)
    assert [m["text"] for m in run.items("agent_message")] == [answer]
    assert not run.items("error") or all(
        "Model metadata" in e["message"] for e in run.items("error")
    ), failure(run, gateway)  # only Codex's note that it does not know the model's name
    # All of Codex's tools reached the provider, the sub-agent namespace's too (translated as
    # `<namespace>__<name>` where the provider has no Responses API).
    tools = offered_tools(request["body"])
    assert {"exec_command", "write_stdin", "view_image"} <= tools
    if name == "openai":
        assert "multi_agent_v1" in tools
        # Passed through as Codex sent it: no stored state, the whole history every turn.
        body = request["body"]
        assert body["store"] is False and "previous_response_id" not in body
        assert body["include"] == ["reasoning.encrypted_content"]
        assert answer == " ".join(reply_words(PROMPT, 50))  # the words the prompt seeds
    else:
        assert "multi_agent_v1__spawn_agent" in tools


@pytest.mark.parametrize("name", FORMATS)
def test_codex_runs_a_shell_tool_loop(
    codex: str, gateway: Process, fresh: Process, tmp_path: Path, name: str
) -> None:
    run = run_codex(
        codex,
        tmp_path,
        custom_provider(gateway),
        "--model",
        f"{name}-shell",
        "Run the command the tool suggests.",
    )
    assert run.returncode == 0, failure(run, gateway)
    # The model called exec_command with `cmd: "mock cmd"`; Codex ran it in its read-only
    # sandbox (no such command), sent the output back, and the model quoted it.
    [command] = run.items("command_execution")
    assert "mock cmd" in command["command"]
    assert command["exit_code"] == 127
    assert "mock: command not found" in command["aggregated_output"]
    assert run.last_message is not None and run.last_message.startswith("tool said:"), failure(
        run, gateway
    )
    assert "mock: command not found" in run.last_message
    first, second = received(fresh)
    assert (first["model"], second["model"]) == (
        "shell~tool=exec_command",
        "shell~tool=exec_command",
    )
    provider_path(name, second)
    [result] = tool_results(name, second["body"])
    assert "mock: command not found" in result
    if name == "gemini":
        assert json.loads(result)["name"] == "exec_command"
    assert run.last_message == mock_answer(second)


@pytest.mark.parametrize("name", TRANSLATED)
def test_codex_runs_its_freeform_apply_patch_tool(
    codex: str, gateway: Process, fresh: Process, tmp_path: Path, name: str
) -> None:
    """`apply_patch` is a `custom` tool with a Lark grammar: translated as a function taking one
    string, `input`, and the call given back to Codex as a `custom_tool_call`."""
    run = run_codex(
        codex,
        tmp_path,
        custom_provider(gateway),
        "--model",
        f"gpt-5.5-{name}",
        # Without sub-agents Codex defers no tools, so it sends no `tool_search` tool (see
        # test_codex_with_deferred_tools_and_tool_search).
        "--disable",
        "multi_agent",
        "Apply the patch the tool suggests.",
    )
    assert run.returncode == 0, failure(run, gateway)
    first, second = received(fresh)
    assert first["model"] == "patch~tool=apply_patch"
    provider_path(name, first)
    if name == "anthropic":
        [tool] = [t for t in first["body"]["tools"] if t["name"] == "apply_patch"]
        schema = tool["input_schema"]
        description = tool["description"]
    else:
        [tool] = [
            d
            for t in first["body"]["tools"]
            for d in t.get("functionDeclarations") or []
            if d["name"] == "apply_patch"
        ]
        schema = tool.get("parameters") or tool.get("parametersJsonSchema")
        description = tool["description"]
    assert list(schema["properties"]) == ["input"]
    assert "*** Begin Patch" in description  # the grammar, told to the model
    # The mock's input ("mock input") is no patch: Codex refused it and said why; the result
    # went back to the model, which quoted it.
    [result] = tool_results(name, second["body"])
    assert "invalid patch: The first line of the patch must be '*** Begin Patch'" in result
    assert run.last_message is not None and run.last_message.startswith("tool said:"), failure(
        run, gateway
    )
    assert run.last_message == mock_answer(second)
    # Codex sent the model's turn back as it got it: the call with its freeform input, and
    # (gpt-5.5 asks for reasoning) the model's signed thinking, which came to Codex as a
    # reasoning item's encrypted_content.
    if name == "anthropic":
        blocks = second["body"]["messages"][-2]["content"]
        [thinking] = [b for b in blocks if b["type"] == "thinking"]
        assert thinking["signature"].startswith("mocksig-")
        [call] = [b for b in blocks if b["type"] == "tool_use"]
        assert (call["name"], call["input"]) == ("apply_patch", {"input": "mock input"})
    else:
        [part] = [p for p in second["body"]["contents"][-2]["parts"] if "functionCall" in p]
        assert part["functionCall"] == {"name": "apply_patch", "args": {"input": "mock input"}}
        assert part.get("thoughtSignature")
    assert not list((tmp_path / "work").iterdir())  # nothing written


def test_codex_with_its_own_default_model(
    codex: str, gateway: Process, fresh: Process, tmp_path: Path
) -> None:
    """No model given: Codex's default (gpt-6.2-sol in 0.171.0) reaches the gateway's wildcard.
    On it Codex sends no `tools` but an `additional_tools` input item (role `developer`) that
    carries them as namespaces (`functions`: a freeform `exec` tool and four functions;
    `clock`; `collaboration`), and `reasoning.context: "all_turns"`."""
    run = run_codex(codex, tmp_path, custom_provider(gateway), PROMPT)
    assert run.returncode == 0, failure(run, gateway)
    [request] = received(fresh)
    assert request["model"] == "own-name~tool=none"
    assert run.last_message == mock_answer(request)
    assert {"functions__exec", "clock__sleep"} <= offered_tools(request["body"])


def test_codex_with_deferred_tools_and_tool_search(
    codex: str, gateway: Process, fresh: Process, tmp_path: Path
) -> None:
    """On the models of its catalog (here gpt-5.5) Codex defers the sub-agent tools and offers
    `{"type": "tool_search", "execution": "client", "parameters": {query, limit}}` in their
    place: the model calls it (`tool_search_call`), Codex runs the search itself and answers
    with a `tool_search_output` that carries the tools found."""
    run = run_codex(codex, tmp_path, custom_provider(gateway), "--model", "gpt-5.5-talk", PROMPT)
    assert run.returncode == 0, failure(run, gateway)
    [request] = received(fresh)
    assert run.last_message == mock_answer(request)
    assert {"apply_patch", "tool_search"} <= offered_tools(request["body"])


def test_codex_with_its_default_web_search_setting(
    codex: str, gateway: Process, fresh: Process, tmp_path: Path
) -> None:
    """Codex's default config (no `web_search` key: cached search) sends
    `{"type": "web_search", "external_web_access": false}` with every request."""
    config = custom_provider(gateway, web_search=True)
    run = run_codex(codex, tmp_path, config, "--model", "anthropic-talk", PROMPT)
    assert run.returncode == 0, failure(run, gateway)
    [request] = received(fresh)
    assert run.last_message == mock_answer(request)


class Relay:
    """A TCP relay between Codex and the gateway that keeps what went each way, connection by
    connection: Codex's WebSocket attempts (GET /v1/responses with Upgrade, answered 426) are
    not in the gateway's access log."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[tuple[bytearray, bytearray]] = []
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.target_port))
            sent, answered = bytearray(), bytearray()
            self.connections.append((sent, answered))
            self.sockets += [client, upstream]
            for source, sink, seen in ((client, upstream, sent), (upstream, client, answered)):
                threading.Thread(target=_pipe, args=(source, sink, seen), daemon=True).start()

    def requests(self) -> list[tuple[str, str, dict[str, str], str]]:
        """(method, path, headers, the status line of the connection's first answer) of every
        request, in order."""
        out = []
        for sent, answered in list(self.connections):
            status = bytes(answered).split(b"\r\n", 1)[0].decode("latin-1")
            rest = bytes(sent)
            while rest:
                head, separator, rest = rest.partition(b"\r\n\r\n")
                if not separator:
                    break
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                out.append((method, path, headers, status))
                rest = rest[int(headers.get("content-length", "0")) :]
        return out

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def _pipe(source: socket.socket, sink: socket.socket, seen: bytearray) -> None:
    try:
        while chunk := source.recv(65536):
            seen += chunk
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay(gateway: Process) -> Iterator[Relay]:
    relay = Relay(gateway.port)
    yield relay
    relay.close()


@pytest.mark.parametrize("name", ("openai", "anthropic"))
def test_codexs_builtin_openai_provider_falls_back_to_http_at_once(
    codex: str, gateway: Process, fresh: Process, relay: Relay, tmp_path: Path, name: str
) -> None:
    """Codex's own `openai` provider, pointed at the gateway with `openai_base_url` (`codex
    exec` takes its key from CODEX_API_KEY), tries the Responses API over a WebSocket first;
    the gateway's 426 sends it over to HTTP at once, without the retries (and seconds) any
    other answer costs."""
    run = run_codex(
        codex,
        tmp_path,
        config_toml(base_url=relay.url + "/v1", builtin=True),
        "--model",
        f"{name}-talk",
        PROMPT,
        env={"CODEX_API_KEY": CLIENT_KEY},
        timeout_s=60,
    )
    assert run.returncode == 0, failure(run, gateway)
    [request] = received(fresh)
    assert run.last_message == mock_answer(request)
    calls = [(method, path, status) for method, path, _, status in relay.requests()]
    upgrades = [c for c in calls if c[:2] == ("GET", "/v1/responses")]
    assert 1 <= len(upgrades) <= 2, calls
    assert all(status.startswith("HTTP/1.1 426") for _, _, status in upgrades), calls
    assert [c[:2] for c in calls if c[0] == "POST"] == [("POST", "/v1/responses")], calls
    [upgrade] = [h for m, p, h, _ in relay.requests() if (m, p) == ("GET", "/v1/responses")][:1]
    assert upgrade["upgrade"].lower() == "websocket"
    assert upgrade["openai-beta"].startswith("responses_websockets=")
    assert "Falling back" not in run.stdout  # no WebSocket retries before HTTP
    assert run.elapsed_s < 20, failure(run, gateway)
