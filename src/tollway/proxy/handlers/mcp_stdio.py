"""Upstream MCP servers the gateway runs itself: a command launched by each worker when first
needed, speaking MCP over its standard input and output (one JSON-RPC message per line).

The process is kept apart from the gateway as far as a process can be without containers:
it starts in its configured working directory, in a session of its own, with an environment
of only what the service gives it (no gateway secrets beyond those named), without core
dumps, within an address-space limit, its files confined (mcp_sandbox.py: it changes files
only in its working directory), and dies with its worker. A process that exits is
launched again on the next call, after a pause that grows while it keeps failing."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import signal
from typing import TYPE_CHECKING, Any

import orjson

from tollway.proxy.handlers import mcp_sandbox as sandbox
from tollway.proxy.handlers.mcp_channel import Channel, UpstreamFailed

if TYPE_CHECKING:
    from tollway.config.mcp_upstream import McpUpstream

log = logging.getLogger("tollway.proxy")

# The longest line taken from a server: one message.
MAX_LINE_BYTES = 16 * 1024 * 1024
# How long a closing server has to exit after its input is closed, before it is killed.
EXIT_GRACE_S = 2.0
_PR_SET_PDEATHSIG = 1


class StdioChannel(Channel):
    def __init__(self, upstream: McpUpstream) -> None:
        super().__init__(upstream)
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def _connect(self) -> None:
        upstream = self.upstream
        assert upstream.command
        if upstream.sandbox is not None and sandbox.abi() < 1:
            raise UpstreamFailed(
                "this kernel cannot confine the server (no Landlock): give its version "
                "`sandbox: false` to run it unconfined"
            )
        try:
            self._process = process = await asyncio.create_subprocess_exec(
                *upstream.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=upstream.cwd,
                env=dict(upstream.env),
                start_new_session=True,
                preexec_fn=_confine(upstream),
                limit=MAX_LINE_BYTES,
            )
        except OSError as exc:
            raise UpstreamFailed(f"{upstream.command[0]} could not be started: {exc}") from exc
        log.info("started MCP server %r (pid %d)", upstream, process.pid)
        loop = asyncio.get_running_loop()
        self._readers = [
            loop.create_task(self._read(process)),
            loop.create_task(self._log_errors(process)),
        ]

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        reason = "its output closed"
        try:
            while True:
                line = await process.stdout.readline()
                if not line:
                    break
                if line.strip():
                    self.received(line)
        except (ValueError, asyncio.LimitOverrunError):
            reason = f"it wrote a line longer than {MAX_LINE_BYTES} bytes"
            # Out of step with it for good: it is stopped (and launched again when needed).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        code = await process.wait()
        if self._process is process:
            self.lost(f"{reason}; it exited with {code}")

    async def _log_errors(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        with contextlib.suppress(ValueError, asyncio.LimitOverrunError):
            while line := await process.stderr.readline():
                log.info("MCP server %r: %s", self.upstream, line.decode(errors="replace").rstrip())

    async def _write(self, message: dict[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            raise UpstreamFailed("the server is not running")
        try:
            process.stdin.write(orjson.dumps(message) + b"\n")
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise UpstreamFailed(f"the server stopped reading: {exc}") from None

    async def _disconnect(self) -> None:
        """Close the server's input (the protocol's way to stop it), then kill it if it
        lingers."""
        process, self._process = self._process, None
        readers, self._readers = self._readers, []
        if process is None:
            return
        if process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), EXIT_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        for reader in readers:
            reader.cancel()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.returncode is None else None


def _confine(upstream: McpUpstream) -> Any:
    """What runs in the child before the command: no core dumps, the memory limit, a signal
    to end it when its worker dies (Linux), and its files confined (Landlock)."""
    max_memory_mb = upstream.max_memory_mb
    confined = upstream.sandbox
    cwd = upstream.cwd or "/"

    def confine() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if confined is not None:
            sandbox.confine(cwd, *confined)
        if max_memory_mb is not None:
            limit = max_memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return confine
