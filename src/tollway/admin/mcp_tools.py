"""An MCP service's tools as its server describes them when a version is published: their
fingerprints go into the version, and the gateway notices any tool that differs later
(proxy/handlers/mcp.py: tool poisoning shows up in the audit log)."""

from __future__ import annotations

import asyncio
import os

from tollway.config.mcp_server import McpServerSpec
from tollway.config.mcp_upstream import fingerprint
from tollway.config.tenancy import mcp_upstream
from tollway.proxy.handlers.mcp_channel import UpstreamFailed
from tollway.proxy.handlers.mcp_upstream import McpUpstreams
from tollway.store.errors import Conflict


def fingerprints_of(spec: McpServerSpec) -> dict[str, str]:
    """Each tool's fingerprint, by name, asked of the server now (Conflict when it cannot
    be reached: a version is published with what its server offers, or not at all)."""
    upstream = mcp_upstream(spec, os.environ)

    async def listed() -> dict[str, str]:
        upstreams = McpUpstreams()
        try:
            tools = await upstreams.tools(upstream)
        finally:
            await upstreams.close()
        return {str(t.get("name")): fingerprint(t) for t in tools if t.get("name")}

    try:
        return asyncio.run(listed())
    except UpstreamFailed as failed:
        raise Conflict(
            f"the MCP server at {spec.url} could not be asked for its tools ({failed.message}); "
            "a version is published with the tools its server offers",
            "mcp.url",
        ) from None
