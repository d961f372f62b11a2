"""An upstream MCP server in the snapshot, as the data plane reaches it (no pydantic here)."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class McpUpstream:
    # "http" (Streamable HTTP), "sse" (HTTP+SSE) or "stdio".
    transport: str
    # http and sse: the endpoint ("" for stdio).
    url: str
    # Sent with every message: the static headers and the bearer token (a secret: never
    # logged, never passed to clients).
    headers: tuple[tuple[str, str], ...]
    allow: tuple[str, ...] | None
    deny: tuple[str, ...]
    timeout_s: float
    # Each tool's fingerprint when the version was published (None: not recorded), and
    # whether a tool that changed since is withheld.
    approved: Mapping[str, str] | None = field(default=None, hash=False, compare=False)
    hide_changed: bool = False
    # stdio: the command, its directory, its whole environment (secrets among it: never
    # logged) and its memory limit.
    command: tuple[str, ...] = ()
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    max_memory_mb: int | None = None
    # stdio: confined with Landlock to read these (beyond the system's) and change these
    # (beyond cwd); None: not confined.
    sandbox: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def __repr__(self) -> str:
        if self.transport == "stdio":
            return f"McpUpstream(stdio {' '.join(self.command)[:200]!r})"
        return f"McpUpstream({self.url!r})"

    def offers(self, tool: str) -> bool:
        """Whether apps may see and call the server's tool `tool`."""
        if any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.deny):
            return False
        return self.allow is None or any(fnmatch.fnmatchcase(tool, p) for p in self.allow)

    def changed(self, tool: dict[str, Any]) -> str | None:
        """The tool's fingerprint when it differs from the one approved (a new tool's too);
        None when it is as approved, or nothing was recorded."""
        approved = self.approved
        if approved is None:
            return None
        now = fingerprint(tool)
        return None if approved.get(str(tool.get("name"))) == now else now


def fingerprint(tool: Mapping[str, Any]) -> str:
    """What a tool says of itself to a model: its description, title and schemas."""
    told = {k: tool.get(k) for k in ("title", "description", "inputSchema", "outputSchema")}
    return hashlib.sha256(orjson.dumps(told, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
