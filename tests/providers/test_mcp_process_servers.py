"""Upstream MCP servers over stdio and over the older HTTP+SSE transport, both written with the
official `mcp` SDK: a stdio server is a command each worker launches itself, in its working
directory, with only the environment its version gives it, launched again after it crashes
and ended with its worker; an SSE server is reached through its event stream. Their tools
are offered and called through Tollway like any server's."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY
from mcp_clients import connect
from prompt_api_servers import start_declared_gateway
from servers import Process, free_port, worker_pids

SERVER = str(Path(__file__).resolve().parent.parent / "mcp_servers.py")
TOOLS = {"search", "echo", "fail", "admin_reset", "whoami", "crash", "read_file"}


@pytest.fixture(scope="module")
def sse_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    log = (workdir / f"mcp-sse-{port}.log").open("ab")
    proc = subprocess.Popen([sys.executable, SERVER, "sse", str(port)], stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "no SSE server"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/sse"
    proc.terminate()
    proc.wait(10)


def declared(sandbox: Path, sse_url: str | None) -> dict[str, Any]:
    services: dict[str, Any] = {
        "local": {
            "kind": "mcp",
            "route_prefix": "/tools/local",
            "visibility": "public",
            "versions": {
                1: {
                    "status": "published",
                    "mcp": {
                        "transport": "stdio",
                        "command": [sys.executable, SERVER, "stdio"],
                        "cwd": str(sandbox),
                        "env": {"GREETING": "hello"},
                        "pass_env": ["LOCAL_MCP_SECRET"],
                        "timeout_s": 20,
                        # Python's libraries, the venv's packages and the server's script.
                        "read_paths": [sys.base_prefix, sys.prefix, str(Path(SERVER).parent)],
                    },
                }
            },
        }
    }
    if sse_url is not None:
        services["legacy"] = {
            "kind": "mcp",
            "route_prefix": "/tools/legacy",
            "visibility": "public",
            "versions": {1: {"status": "published", "mcp": {"transport": "sse", "url": sse_url}}},
        }
    return {
        "teams": {"tools": {}, "apps": {}},
        "apps": {"apps": {"agent": {"keys": [{"name": "k", "key_sha256": hash_key(CLIENT_KEY)}]}}},
        "services": {"tools": services},
        "subscriptions": [
            {"app": "apps/agent", "service": f"tools/{name}", "status": "approved"}
            for name in services
        ],
    }


def start(workdir: Path, sse_url: str | None) -> tuple[Process, Path]:
    sandbox = workdir / f"sandbox-{free_port()}"
    sandbox.mkdir()
    env = {"LOCAL_MCP_SECRET": "given-to-it", "UNRELATED_SECRET": "kept-from-it"}
    return start_declared_gateway(workdir, declared(sandbox, sse_url), env), sandbox


@pytest.fixture(scope="module")
def gateway(workdir: Path, sse_server: str) -> Iterator[tuple[Process, Path]]:
    process, sandbox = start(workdir, sse_server)
    yield process, sandbox
    process.stop()


async def whoami(url: str) -> dict[str, Any] | None:
    found = None
    async for client in connect(url, "legacy"):
        result = await client.call_tool("local.whoami", {})
        found = result.structured_content if not result.is_error else None
    return found


async def test_a_stdio_server_runs_in_its_directory_with_only_its_environment(
    gateway: tuple[Process, Path],
) -> None:
    process, sandbox = gateway
    async for client in connect(process.url + "/mcp", "auto"):
        names = {t.name for t in (await client.list_tools()).tools}
        assert {f"local.{t}" for t in TOOLS} <= names
        found = await client.call_tool("local.search", {"query": "stdio", "limit": 1})
        assert found.structured_content == {
            "query": "stdio",
            "hits": [{"title": "stdio 0", "score": 1.0}],
        }
        me = (await client.call_tool("local.whoami", {})).structured_content
    assert me is not None
    assert me["cwd"] == str(sandbox)
    assert "TMPDIR" in me["env"]
    assert {"PATH", "HOME", "GREETING", "LOCAL_MCP_SECRET"} <= set(me["env"])
    assert "UNRELATED_SECRET" not in me["env"] and "TOLLWAY_ADMIN_TOKEN" not in me["env"]
    # It belongs to a worker of the gateway.
    assert _parent(me["pid"]) in worker_pids(process)


async def test_a_stdio_server_reads_and_changes_files_only_where_it_may(
    gateway: tuple[Process, Path], workdir: Path
) -> None:
    process, sandbox = gateway
    (sandbox / "inside.txt").write_text("its own")
    outside = workdir / f"outside-{sandbox.name}.txt"
    outside.write_text("the gateway's")
    async for client in connect(process.url + "/mcp", "legacy"):
        inside = await client.call_tool("local.read_file", {"path": str(sandbox / "inside.txt")})
        assert inside.content[0].text == "its own"  # type: ignore[union-attr]
        # The file is there (the test wrote it), but not for the server: an error.
        refused = await client.call_tool("local.read_file", {"path": str(outside)})
        assert refused.is_error is True
        system = await client.call_tool("local.read_file", {"path": "/etc/hostname"})
        assert system.is_error is False


async def test_a_crashed_stdio_server_is_launched_again(gateway: tuple[Process, Path]) -> None:
    process, _ = gateway
    url = process.url + "/mcp"
    # One session stays on one worker: the server that crashes is the one it asked first.
    async for client in connect(url, "legacy"):
        me = (await client.call_tool("local.whoami", {})).structured_content
        assert me is not None
        worker = _parent(me["pid"])
        crashed = await client.call_tool("local.crash", {})
        assert crashed.is_error is True
        assert "lost" in crashed.content[0].text  # type: ignore[union-attr]
    victim = me["pid"]
    assert worker in worker_pids(process)
    # Sessions land on either worker: ask until the crashed server's worker answers with a
    # new server of its own.
    relaunched = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and relaunched is None:
        found = await whoami(url)
        if found is not None and found["pid"] != victim and _parent(found["pid"]) == worker:
            relaunched = found["pid"]
        time.sleep(0.2)
    assert relaunched is not None, "no server was launched again"
    # The one that crashed is gone and reaped.
    while Path(f"/proc/{victim}").exists() and _zombie(victim) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{victim}").exists(), "the crashed server was not reaped"


async def test_an_sse_server_is_reached_through_its_stream(gateway: tuple[Process, Path]) -> None:
    process, _ = gateway
    async for client in connect(process.url + "/tools/legacy/mcp", "legacy"):
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {f"legacy.{t}" for t in TOOLS}
        found = await client.call_tool("legacy.search", {"query": "sse", "limit": 2})
        assert found.is_error is False
        assert [h["title"] for h in found.structured_content["hits"]] == ["sse 0", "sse 1"]  # type: ignore[index]
        echoed = await client.call_tool("legacy.echo", {"text": "over sse"})
        assert echoed.content[0].text == "echo: over sse"  # type: ignore[union-attr]


async def test_stdio_servers_end_with_the_gateway(workdir: Path) -> None:
    process, _ = start(workdir, None)
    try:
        me = await whoami(process.url + "/mcp")
        assert me is not None
    finally:
        process.stop()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{me['pid']}").exists() and not _zombie(me["pid"]):
        assert time.monotonic() < deadline, "the stdio server outlived its gateway"
        time.sleep(0.1)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return False
