"""Tollway as an MCP server: what an app is subscribed to, as Model Context Protocol tools,
prompts and resources (docs/mcp.md).

Streamable HTTP, stateless: every message is one POST answered with one JSON-RPC response
(`application/json`), a notification with 202; no session, so any worker of any node answers
any message. A GET without Streamable HTTP's headers opens the older HTTP+SSE transport
(mcp_sse.py), whose messages are answered the same way. `POST /mcp` offers every service
the key's app has an approved subscription to; `POST {prefix}/mcp` and `POST /mcp{prefix}`
one service only (its subscription checked like any call under its prefix). Sessions start
either way clients start them: the stateless `server/discover` probe (protocol 2026-07-28,
which current SDKs send first) or the `initialize` handshake (2025-11-25, 2025-06-18,
2025-03-26). Results carry the fields the newer protocol requires (`resultType`, `ttlMs`,
`cacheScope`); older clients ignore them.

Tools come from three kinds of service: prompt APIs (mcp_prompts.py), REST services'
operations (mcp_rest.py) and upstream MCP servers (mcp_servers.py). Each call is a call of
its service, through that service's chain, recorded as one of its calls. The app's own
allow and deny lists narrow what it sees and may call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import orjson

from tollway.config.prompt_openapi import PromptApiEntry
from tollway.config.prompt_openapi import document as openapi_document
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.mcp_calls import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    McpError,
    app_may_use,
    listed,
    server_tool,
    tool_names,
    unknown_tool,
)
from tollway.proxy.handlers.mcp_prompts import (
    PromptTools,
    prompt_entry,
    prompt_messages,
    prompt_tool,
)
from tollway.proxy.handlers.mcp_rest import RestTools
from tollway.proxy.handlers.mcp_servers import ServerTools
from tollway.proxy.handlers.mcp_sse import LegacySessions, session_of
from tollway.proxy.handlers.mcp_upstream import McpUpstreams
from tollway.proxy.handlers.passthrough import RestProxy
from tollway.proxy.handlers.prompt_api import PromptApis
from tollway.proxy.replies import finish

if TYPE_CHECKING:
    from tollway.config.snapshot import ServiceRuntime

log = logging.getLogger("tollway.proxy")

MODERN = "2026-07-28"
HANDSHAKE = ("2025-11-25", "2025-06-18", "2025-03-26")
SERVER_INFO = {"name": "tollway", "version": "1"}
# The largest message taken (a tool's arguments are a prompt API's input: 64 KiB by default).
MAX_MESSAGE_BYTES = 1024 * 1024
_RESOURCE = "tollway://openapi/"


class McpServer:
    """The worker's MCP endpoint, over its prompt-API handler, its REST proxy and its
    sessions with upstream MCP servers."""

    __slots__ = ("legacy", "prompts", "rest", "servers", "upstreams")

    def __init__(
        self, prompts: PromptApis, rest: RestProxy, upstreams: McpUpstreams | None = None
    ) -> None:
        self.upstreams = upstreams or McpUpstreams()
        self.prompts = PromptTools(prompts)
        self.rest = RestTools(rest)
        self.servers = ServerTools(self.upstreams)
        self.legacy = LegacySessions()

    async def close(self) -> None:
        """Stop the servers this worker runs (stdio), close its channels and streams."""
        await self.upstreams.close()
        await self.legacy.close()

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        request = ctx.request
        if request.method == "GET":
            if request.header(b"mcp-session-id") or request.header(b"mcp-protocol-version"):
                # Streamable HTTP's stream of server messages: this server sends none.
                _reject(ctx, conn, 405, INVALID_REQUEST, "No server-sent stream here: POST.")
                return None
            return self.legacy.open(ctx, conn)
        session = session_of(request.query) if request.query else None
        if session is not None:
            return self.legacy.post(ctx, conn, session, self.answer)  # type: ignore[arg-type]
        return self.answer(ctx, conn)

    def answer(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        """One message, answered statelessly."""
        message = _message(ctx, conn)
        if message is None:
            return None
        method = message.get("method")
        if "id" not in message:
            # A notification (initialized, cancelled...) or a response: nothing to answer.
            ctx.status = 202
            ctx.outcome = "completed"
            conn.send(202, [])
            finish(ctx)
            return None
        ident = message["id"]
        if not isinstance(method, str) or not isinstance(ident, (str, int)):
            _reject(ctx, conn, 400, INVALID_REQUEST, "A request has a method and an id.")
            return None
        params = message.get("params") or {}
        if not isinstance(params, dict):
            _answer(ctx, conn, ident, McpError(INVALID_PARAMS, "params: an object"))
            return None
        if method in ("tools/call", "tools/list"):
            return self._awaited(ctx, conn, ident, method, params)
        try:
            result = self._result(ctx, method, params)
        except McpError as error:
            result = error
        _answer(ctx, conn, ident, result)
        return None

    async def _awaited(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        ident: Any,
        method: str,
        params: dict[str, Any],
    ) -> None:
        try:
            if method == "tools/list":
                result = await self._tools(ctx)
            else:
                result = await self._call(ctx, str(params.get("name")), params.get("arguments"))
        except BaseException:
            finish(ctx, "client_disconnect")
            raise
        _answer(ctx, conn, ident, result)

    # -- the methods --------------------------------------------------------------------------

    def _result(self, ctx: RequestContext, method: str, params: dict[str, Any]) -> Any:
        if method == "server/discover":
            return {
                "supportedVersions": [MODERN, *HANDSHAKE],
                "capabilities": _CAPABILITIES,
                "instructions": _INSTRUCTIONS,
                "resultType": "complete",
                "ttlMs": 0,
                "cacheScope": "private",
                "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO},
            }
        if method == "initialize":
            asked = params.get("protocolVersion")
            return {
                "protocolVersion": asked if asked in HANDSHAKE else HANDSHAKE[0],
                "capabilities": _CAPABILITIES,
                "serverInfo": SERVER_INFO,
                "instructions": _INSTRUCTIONS,
            }
        if method == "ping":
            return {}
        if method == "prompts/list":
            offered = self._usable(ctx).items()
            return listed({"prompts": [prompt_entry(n, s) for n, s in offered if s.prompt]})
        if method == "prompts/get":
            service = self._usable(ctx).get(str(params.get("name")))
            if service is None or service.prompt is None:
                raise McpError(INVALID_PARAMS, f"Unknown prompt: {params.get('name')}")
            return prompt_messages(service, params.get("arguments"))
        if method == "resources/list":
            offered = self._usable(ctx).items()
            return listed({"resources": [_resource(n, s) for n, s in offered if _documented(s)]})
        if method == "resources/read":
            return self._document(ctx, str(params.get("uri")))
        if method == "resources/templates/list":
            return listed({"resourceTemplates": []})
        raise McpError(METHOD_NOT_FOUND, f"Method not found: {method}")

    def _offered(self, ctx: RequestContext) -> dict[str, ServiceRuntime]:
        """The services this endpoint offers the caller, by the name their tools go by: the
        endpoint's own service, or every one the key's app has an approved subscription to
        (every one, for an operator's key outside the store)."""
        route = ctx.route
        if route is not None and route.service is not None:
            services = [route.service]
        else:
            tenancy = ctx.config.tenancy
            key = ctx.key
            services = [
                s
                for s in (tenancy.services.values() if tenancy is not None else ())
                if (s.prompt is not None or s.mcp is not None or s.operations)
                and (
                    key is None
                    or key.app is None
                    or (tenancy is not None and tenancy.status(key.app.id, s.id) == "approved")
                )
            ]
        return tool_names(services)

    def _usable(self, ctx: RequestContext) -> dict[str, ServiceRuntime]:
        """The offered services whose prompt and document the app's own lists leave it: a
        prompt API by its name, a REST service when any of its operations is left."""
        key = ctx.key
        return {
            name: service
            for name, service in self._offered(ctx).items()
            if app_may_use(key, name)
            or any(app_may_use(key, f"{name}.{op}") for op in service.operations)
        }

    async def _tools(self, ctx: RequestContext) -> Any:
        """Each offered service's tools: a prompt API's one, a REST service's operations, an
        upstream server's as it lists them (a server that cannot be reached is left out)."""
        tools: list[dict[str, Any]] = []
        for name, service in self._offered(ctx).items():
            if service.prompt is not None:
                tools.append(prompt_tool(name, service))
            elif service.mcp is not None:
                tools.extend(await self.servers.listed(name, service))
            else:
                tools.extend(_operation_tool(name, service, op) for op in service.operations)
        key = ctx.key
        return listed({"tools": [t for t in tools if app_may_use(key, t["name"])]})

    async def _call(self, ctx: RequestContext, asked: str, arguments: Any) -> Any:
        if not app_may_use(ctx.key, asked):
            return unknown_tool(asked)
        offered = self._offered(ctx)
        service = offered.get(asked)
        if service is not None and service.prompt is not None:
            return await self.prompts.call(ctx, service, arguments)
        owner, tool = server_tool(offered, asked)
        if owner is None or not tool:
            return unknown_tool(asked)
        if owner.mcp is not None:
            return await self.servers.call(ctx, owner, tool, arguments)
        if owner.operations:
            return await self.rest.call(ctx, owner, tool, arguments)
        return unknown_tool(asked)

    def _document(self, ctx: RequestContext, uri: str) -> Any:
        """`resources/read`: a service's OpenAPI document."""
        service = self._usable(ctx).get(uri.removeprefix(_RESOURCE))
        if not uri.startswith(_RESOURCE) or service is None or not _documented(service):
            raise McpError(INVALID_PARAMS, f"Unknown resource: {uri}")
        if service.prompt is not None:
            primary = service.prompt.primary
            entry = PromptApiEntry(service.name, service.prefix, primary.number, primary.definition)
            text = orjson.dumps(
                openapi_document([entry], f"Prompt API {service.name}", None)
            ).decode()
        else:
            text = service.document.decode()
        contents = [{"uri": uri, "mimeType": "application/json", "text": text}]
        return {"contents": contents, "resultType": "complete"}


def _documented(service: ServiceRuntime) -> bool:
    return service.prompt is not None or bool(service.document)


def _resource(name: str, service: ServiceRuntime) -> dict[str, Any]:
    return {
        "uri": _RESOURCE + name,
        "name": f"{name}-openapi",
        "title": f"The OpenAPI document of {service.name}",
        "mimeType": "application/json",
    }


def _operation_tool(name: str, service: ServiceRuntime, operation: str) -> dict[str, Any]:
    described = service.operations[operation]
    tool: dict[str, Any] = {
        "name": f"{name}.{operation}"[:128],
        "title": f"{described.method} {service.prefix}{described.path}",
        "description": described.description,
        "inputSchema": described.input_schema,
        "annotations": {
            "readOnlyHint": described.read_only,
            "idempotentHint": described.idempotent,
            "destructiveHint": described.method == "DELETE",
            "openWorldHint": False,
        },
    }
    if described.output_schema is not None:
        tool["outputSchema"] = described.output_schema
    return tool


def _message(ctx: RequestContext, conn: HttpConnection) -> dict[str, Any] | None:
    """The request's JSON-RPC message, or None when it was refused as it came."""
    body = ctx.request.body
    if len(body) > MAX_MESSAGE_BYTES:
        _reject(ctx, conn, 413, INVALID_REQUEST, "The message is too large.")
        return None
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        _reject(ctx, conn, 400, PARSE_ERROR, "Parse error: the body is not JSON.")
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        _reject(ctx, conn, 400, INVALID_REQUEST, "Not a JSON-RPC 2.0 message.")
        return None
    return message


def _answer(ctx: RequestContext, conn: HttpConnection, ident: Any, answer: Any) -> None:
    if isinstance(answer, McpError):
        reply: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": ident,
            "error": {"code": answer.code, "message": answer.message},
        }
    else:
        reply = {"jsonrpc": "2.0", "id": ident, "result": answer}
    ctx.status = 200
    ctx.outcome = "completed"
    conn.send_json(200, orjson.dumps(reply))
    finish(ctx)


def _reject(
    ctx: RequestContext, conn: HttpConnection, status: int, code: int, message: str
) -> None:
    """A message that cannot be answered as a request (its id unknown): an HTTP error status
    with the JSON-RPC error (id null), which clients read as the error of what they sent."""
    ctx.status = status
    ctx.outcome = "refused"
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    conn.send_json(status, orjson.dumps(body))
    finish(ctx)


_CAPABILITIES = {
    "tools": {"listChanged": False},
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False},
}
_INSTRUCTIONS = (
    "Tools here are the company's APIs: prompt APIs (answered by a model), REST services' "
    "operations and MCP servers' tools, each taking the JSON input its schema describes. "
    "Resources are the services' OpenAPI documents."
)
