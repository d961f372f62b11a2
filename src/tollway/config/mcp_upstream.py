"""An upstream MCP server in the snapshot, as the data plane reaches it (no pydantic here)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class McpUpstream:
    url: str
    # Sent with every message: the static headers and the bearer token (a secret: never
    # logged, never passed to clients).
    headers: tuple[tuple[str, str], ...]
    allow: tuple[str, ...] | None
    deny: tuple[str, ...]
    timeout_s: float

    def __repr__(self) -> str:
        return f"McpUpstream({self.url!r})"

    def offers(self, tool: str) -> bool:
        """Whether apps may see and call the server's tool `tool`."""
        if any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.deny):
            return False
        return self.allow is None or any(fnmatch.fnmatchcase(tool, p) for p in self.allow)
