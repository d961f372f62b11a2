"""The test side of MCP: an upstream MCP server process (tests/mcp_servers.py, written with the
`mcp` SDK) that can be restarted on its port, and the SDK's client connected to the gateway
with an app's key."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gateways import CLIENT_KEY
from servers import free_port

SERVER_TOKEN = "upstream-mcp-token-known-only-to-the-gateway"


class Upstream:
    """The SDK-written MCP server, as a process that can be restarted on its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / f"mcp-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, *echo_says: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve().parent / "mcp_servers.py"),
                str(self.port),
                SERVER_TOKEN,
                *echo_says,
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the MCP server did not start:\n{self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


async def connect(url: str, mode: str = "auto", key: str = CLIENT_KEY) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=60)
    )
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client
