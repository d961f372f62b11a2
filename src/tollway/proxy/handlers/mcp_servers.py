"""Upstream MCP servers' tools, offered through Tollway's MCP endpoint (proxy/handlers/mcp.py):
listed as each server describes them under its service's name, called at the server with the
gateway's credential after the service's chain, each call recorded as one of the service's.

A tool that differs from what was approved when the version was published (what it tells
models changed: tool poisoning) is reported once, and withheld when the service says so."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from tollway.analytics import sink
from tollway.errors import GatewayError
from tollway.proxy.handlers.mcp_calls import (
    INVALID_PARAMS,
    McpError,
    failed,
    tool_call,
    tool_chain,
    unknown_tool,
)
from tollway.proxy.handlers.mcp_channel import UpstreamFailed
from tollway.proxy.handlers.mcp_upstream import McpUpstreams
from tollway.proxy.replies import finish

if TYPE_CHECKING:
    from tollway.config.snapshot import ServiceRuntime
    from tollway.policies.context import RequestContext

log = logging.getLogger("tollway.proxy")


class ServerTools:
    __slots__ = ("upstreams",)

    def __init__(self, upstreams: McpUpstreams) -> None:
        self.upstreams = upstreams

    async def listed(self, name: str, service: ServiceRuntime) -> list[dict[str, Any]]:
        """The server's tools the service offers, renamed `name.tool` (none when the server
        cannot be reached: logged)."""
        upstream = service.mcp
        assert upstream is not None
        try:
            tools = await self.upstreams.tools(upstream)
        except UpstreamFailed as failure:
            log.warning("MCP server of %s left out of tools/list: %s", service.name, failure)
            return []
        offered = []
        for tool in tools:
            original = str(tool.get("name", ""))
            if not original or not upstream.offers(original):
                continue
            changed = upstream.changed(tool)
            if changed is not None:
                _tool_changed(service, original, changed)
                if upstream.hide_changed:
                    continue
            offered.append({**tool, "name": f"{name}.{original}"[:128]})
        return offered

    async def call(
        self, ctx: RequestContext, service: ServiceRuntime, tool: str, arguments: Any
    ) -> Any:
        """The server's answer to the call (or McpError): withheld when the tool changed
        since its version was published and the service says so (it is not what was
        approved)."""
        upstream = service.mcp
        assert upstream is not None
        if not upstream.offers(tool):
            return unknown_tool(f"{service.name}.{tool}")
        if upstream.hide_changed and upstream.approved is not None:
            try:
                tools = await self.upstreams.tools(upstream)
            except UpstreamFailed:
                tools = []
            described = next((t for t in tools if t.get("name") == tool), None)
            now = upstream.changed(described) if described is not None else None
            if described is None or now is not None:
                if now is not None:
                    _tool_changed(service, tool, now)
                return McpError(
                    INVALID_PARAMS,
                    f"The tool {tool} changed since it was approved: a new version of "
                    f"{service.name} must be published to offer it again.",
                )
        return await self._forwarded(ctx, service, tool, arguments)

    async def _forwarded(
        self, ctx: RequestContext, service: ServiceRuntime, tool: str, arguments: Any
    ) -> Any:
        """The call passes its service's chain (subscription, limits) and is recorded as a
        call of it, the tool as its model."""
        assert service.mcp is not None
        entry = ctx.config.routes.exact.get(service.prefix + "/mcp", {}).get("POST")
        if entry is None:
            return unknown_tool(tool)
        given = arguments if arguments is not None else {}
        params = {"name": tool, "arguments": given}
        # The call's body is the arguments: a record's request size is theirs.
        call = tool_call(ctx, entry, "POST", service.prefix + "/mcp", orjson.dumps(given))
        call.model = f"{service.name.rpartition('/')[2]}.{tool}"
        answer: Any
        try:
            verdict = await tool_chain(call, entry, body=True)
            if verdict is not None:
                message = verdict.message if isinstance(verdict, GatewayError) else "refused"
                call.status, call.outcome = getattr(verdict, "status", 403), "refused"
                answer = failed(f"{service.name} refused the call: {message}")
            else:
                call.upstream_started_at = time.monotonic()
                answer = await self.upstreams.request(service.mcp, "tools/call", params)
                call.status, call.outcome = 200, "completed"
                if not isinstance(answer, dict):
                    raise UpstreamFailed("a tools/call result that is not an object")
                # As the server answered, in the era the client speaks (older servers'
                # results lack what the newest protocol requires).
                answer = {**answer, "resultType": "complete"}
                if answer.get("isError"):
                    call.status, call.error_code = 502, "tool_error"
        except UpstreamFailed as failure:
            call.status, call.outcome = 502, "upstream_error"
            if failure.code is not None:
                answer = McpError(failure.code, failure.message)
            else:
                answer = failed(f"The MCP server of {service.name} failed: {failure.message}")
        except BaseException:
            finish(call, "client_disconnect")
            raise
        finish(call)
        return answer


# Changes already reported by this worker: (service, tool, fingerprint).
_REPORTED: set[tuple[int, str, str]] = set()


def _tool_changed(service: ServiceRuntime, tool: str, now: str) -> None:
    """An MCP server's tool no longer as approved: an event, stored once whichever worker or
    node sees it first, which the recorder also writes to the audit log."""
    seen = (service.id, tool, now)
    if seen in _REPORTED:
        return
    _REPORTED.add(seen)
    assert service.mcp is not None
    before = (service.mcp.approved or {}).get(tool)
    log.warning("MCP tool %s of %s changed since its version was published", tool, service.name)
    digest = hashlib.sha256(f"{tool}/{now}".encode()).hexdigest()[:24]
    sink.event(
        "mcp.tool_changed",
        {
            "service_id": service.id,
            "service": service.name,
            "version": service.version,
            "tool": tool,
            "approved": before,
            "now": now,
            "withheld": service.mcp.hide_changed,
        },
        team_id=service.team_id,
        event_id=f"mcp-tool-{service.id}-{digest}",
    )
