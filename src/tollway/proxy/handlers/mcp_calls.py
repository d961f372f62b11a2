"""What every kind of MCP tool shares (proxy/handlers/mcp.py): the protocol's errors, the
names tools go by, and a tool call as a call of its service, through that service's chain
and recorded as one of its calls."""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Any

import orjson

from tollway.policies.base import Pending, Verdict
from tollway.policies.context import RequestContext
from tollway.proxy.http import Request

if TYPE_CHECKING:
    from tollway.config.snapshot import ClientKey, RouteEntry, ServiceRuntime

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")
# What a tool call's request does not take from the MCP message's: its framing, what it
# says of the MCP exchange, and the encodings it takes (a tool's answer is read here, not by
# the client).
_NOT_TAKEN = (
    b"content-length",
    b"content-type",
    b"x-tollway-call",
    b"accept",
    b"accept-encoding",
    b"x-tollway-version",
    b"mcp-protocol-version",
    b"mcp-session-id",
    b"last-event-id",
)


class McpError(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unknown_tool(name: object) -> McpError:
    return McpError(INVALID_PARAMS, f"Unknown tool: {name}")


async def tool_chain(call: RequestContext, entry: RouteEntry, body: bool) -> Verdict:
    """A tool call through its service's chain, as a call under its prefix would go: the
    request phase (key, subscription), and with `body` the body phase (limits, budgets)."""
    pipeline = entry.pipeline
    verdict = pipeline.request(call) if pipeline.request_phase else None
    if isinstance(verdict, Pending):
        verdict = await verdict.waiter
    if verdict is None and body and pipeline.body_phase:
        verdict = pipeline.body(call)
        if isinstance(verdict, Pending):
            verdict = await verdict.waiter
    return verdict


def tool_call(
    ctx: RequestContext,
    entry: RouteEntry,
    method: str,
    path: str,
    body: bytes,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> RequestContext:
    """The tool call as a call of its service: the MCP request's key and client, with the
    call's own path, query, headers and body."""
    incoming = ctx.request
    taken = [(k, v) for k, v in incoming.headers if k not in _NOT_TAKEN]
    request = Request(
        method,
        path,
        query,
        [*taken, *(headers or ()), (b"x-tollway-call", b"mcp")],
        body,
        "1.1",
        True,
        incoming.request_id + b"-tool",
        incoming.client_address,
    )
    return RequestContext(request, ctx.config, entry)


def tool_names(services: list[ServiceRuntime]) -> dict[str, ServiceRuntime]:
    """The services by the name their tools go by: the service's own name, or `team_name`
    when two teams offer a service of that name."""
    short = [s.name.rpartition("/")[2] for s in services]
    named = {}
    for service, name in zip(services, short, strict=True):
        unique = name if short.count(name) == 1 else service.name.replace("/", "_")
        named[_TOOL_NAME.sub("_", unique)[:100]] = service
    return named


def server_tool(
    offered: dict[str, ServiceRuntime], asked: str
) -> tuple[ServiceRuntime | None, str]:
    """The service and its own tool name of `asked` (`service.tool`; a tool's own name may
    hold dots too): the longest service name it starts with."""
    for name in sorted(offered, key=len, reverse=True):
        if asked.startswith(name + "."):
            return offered[name], asked[len(name) + 1 :]
    return None, ""


def app_may_use(key: ClientKey | None, tool: str) -> bool:
    """Whether the key's app may see and call the tool of this name (its own allow and deny
    lists, names or fnmatch patterns)."""
    app = key.app if key is not None else None
    if app is None:
        return True
    if any(fnmatch.fnmatchcase(tool, pattern) for pattern in app.tools_deny):
        return False
    allow = app.tools_allow
    return allow is None or any(fnmatch.fnmatchcase(tool, pattern) for pattern in allow)


def failed(message: str) -> dict[str, Any]:
    """A tool result that reports an error (to the model, not the protocol)."""
    return {
        "content": [{"type": "text", "text": message}],
        "isError": True,
        "resultType": "complete",
    }


def listed(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}


def loads_or_none(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
