"""Tollway as an MCP server: the prompt APIs an app is subscribed to, as Model Context Protocol
tools and prompts (docs/mcp.md).

Streamable HTTP, stateless: every message is one POST answered with one JSON-RPC response
(`application/json`), a notification with 202; no session, so any worker of any node answers
any message. `POST /mcp` offers every prompt API the key's app has an approved subscription
to; `POST {prefix}/mcp` one API only (its subscription checked like any call under its
prefix). Sessions start either way clients start them: the stateless `server/discover` probe
(protocol 2026-07-28, which current SDKs send first) or the `initialize` handshake (2025-11-25,
2025-06-18, 2025-03-26). Results carry the fields the newer protocol requires (`resultType`,
`ttlMs`, `cacheScope`); older clients ignore them.

A tool call is a call of the prompt API: it goes through the API's own route (its chain:
subscription, limits, budgets), is answered by the same handler and is recorded as one call,
with `x-tollway-call: mcp`. Input that does not fit the API is the protocol's invalid-params
error naming the field; a refusal or a model failure is a tool result with `isError`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import orjson

from tollway.analytics import sink
from tollway.errors import GatewayError
from tollway.llm.prompt_template import InputError
from tollway.policies.base import Pending, Verdict
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.calls import HeldAnswer
from tollway.proxy.handlers.mcp_upstream import McpUpstreams, UpstreamFailed
from tollway.proxy.handlers.prompt_api import PromptApis
from tollway.proxy.http import Request
from tollway.proxy.replies import finish, refuse

if TYPE_CHECKING:
    from tollway.config.snapshot import RouteEntry, ServiceRuntime

log = logging.getLogger("tollway.proxy")

MODERN = "2026-07-28"
HANDSHAKE = ("2025-11-25", "2025-06-18", "2025-03-26")
SERVER_INFO = {"name": "tollway", "version": "1"}
# The largest message taken (a tool's arguments are a prompt API's input: 64 KiB by default).
MAX_MESSAGE_BYTES = 1024 * 1024
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
_JSON = b"application/json"
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class McpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class McpServer:
    """The worker's MCP endpoint, over its prompt-API handler and its sessions with upstream
    MCP servers."""

    __slots__ = ("prompts", "upstreams")

    def __init__(self, prompts: PromptApis, upstreams: McpUpstreams | None = None) -> None:
        self.prompts = prompts
        self.upstreams = upstreams or McpUpstreams()

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
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
            self._answer(ctx, conn, ident, McpError(INVALID_PARAMS, "params: an object"))
            return None
        if method == "tools/call":
            return self._call(ctx, conn, ident, params)
        if method == "tools/list":
            return self._tools(ctx, conn, ident)
        try:
            result = self._result(ctx, method, params)
        except McpError as error:
            self._answer(ctx, conn, ident, error)
            return None
        self._answer(ctx, conn, ident, result)
        return None

    def _answer(self, ctx: RequestContext, conn: HttpConnection, ident: Any, answer: Any) -> None:
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
            offered = self._offered(ctx).items()
            return _listed({"prompts": [_prompt(n, s) for n, s in offered if s.prompt]})
        if method == "prompts/get":
            return self._prompt_messages(ctx, params)
        if method == "resources/list":
            return _listed({"resources": []})
        if method == "resources/templates/list":
            return _listed({"resourceTemplates": []})
        raise McpError(METHOD_NOT_FOUND, f"Method not found: {method}")

    def _offered(self, ctx: RequestContext) -> dict[str, ServiceRuntime]:
        """The prompt APIs this endpoint offers the caller, by tool name: the endpoint's own
        service, or every one the key's app has an approved subscription to (every one, for
        an operator's key outside the store)."""
        route = ctx.route
        if route is not None and route.service is not None:
            services = [route.service]
        else:
            tenancy = ctx.config.tenancy
            key = ctx.key
            services = [
                s
                for s in (tenancy.services.values() if tenancy is not None else ())
                if (s.prompt is not None or s.mcp is not None)
                and (
                    key is None
                    or key.app is None
                    or (tenancy is not None and tenancy.status(key.app.id, s.id) == "approved")
                )
            ]
        return tool_names(services)

    def _prompt_messages(self, ctx: RequestContext, params: dict[str, Any]) -> Any:
        service = self._offered(ctx).get(str(params.get("name")))
        if service is None or service.prompt is None:
            raise McpError(INVALID_PARAMS, f"Unknown prompt: {params.get('name')}")
        template = service.prompt.primary.template
        given = params.get("arguments") or {}
        properties = template.input_schema.get("properties") or {}
        variables = {}
        for name, value in given.items() if isinstance(given, dict) else ():
            schema = properties.get(name) or {}
            wants_text = isinstance(schema, dict) and schema.get("type") == "string"
            variables[name] = value if wants_text or not isinstance(value, str) else _json(value)
        try:
            messages = template.render(template.check_input(variables))
        except InputError as exc:
            raise McpError(INVALID_PARAMS, f"The arguments do not fit: {exc}") from None
        return {
            "description": f"The prompt of {service.name}",
            "messages": [
                {
                    # MCP prompts have users and assistants; the system text goes as the user's.
                    "role": "assistant" if m["role"] == "assistant" else "user",
                    "content": {"type": "text", "text": m["content"]},
                }
                for m in messages
            ],
            "resultType": "complete",
        }

    # -- tools/call ---------------------------------------------------------------------------

    async def _tools(self, ctx: RequestContext, conn: HttpConnection, ident: Any) -> None:
        """The prompt APIs' tools, and each upstream server's under its service's name (a
        server that cannot be reached is left out of the list, and logged)."""
        tools = []
        for name, service in self._offered(ctx).items():
            if service.prompt is not None:
                tools.append(_tool(name, service))
                continue
            assert service.mcp is not None
            try:
                listed = await self.upstreams.tools(service.mcp)
            except UpstreamFailed as failed:
                log.warning("MCP server of %s left out of tools/list: %s", service.name, failed)
                continue
            for tool in listed:
                original = str(tool.get("name", ""))
                if not original or not service.mcp.offers(original):
                    continue
                changed = service.mcp.changed(tool)
                if changed is not None:
                    _tool_changed(service, original, changed)
                    if service.mcp.hide_changed:
                        continue
                tools.append({**tool, "name": f"{name}.{original}"[:128]})
        self._answer(ctx, conn, ident, _listed({"tools": tools}))

    def _call(
        self, ctx: RequestContext, conn: HttpConnection, ident: Any, params: dict[str, Any]
    ) -> Awaitable[None] | None:
        asked = str(params.get("name"))
        offered = self._offered(ctx)
        service = offered.get(asked)
        upstream, tool = server_tool(offered, asked)
        if service is None and upstream is not None and upstream.mcp is not None and tool:
            if not upstream.mcp.offers(tool):
                self._answer(ctx, conn, ident, McpError(INVALID_PARAMS, f"Unknown tool: {asked}"))
                return None
            return self._checked(ctx, conn, ident, upstream, tool, params.get("arguments"))
        if service is None or service.prompt is None:
            self._answer(
                ctx, conn, ident, McpError(INVALID_PARAMS, f"Unknown tool: {params.get('name')}")
            )
            return None
        arguments = params.get("arguments") or {}
        entry = ctx.config.routes.exact.get(service.prefix, {}).get("POST")
        if entry is None:
            self._answer(ctx, conn, ident, McpError(INVALID_PARAMS, "Unknown tool"))
            return None
        return self._called(ctx, conn, ident, service, entry, arguments)

    async def _called(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        ident: Any,
        service: ServiceRuntime,
        entry: RouteEntry,
        arguments: Any,
    ) -> None:
        call = _tool_call(ctx, service, entry, arguments)
        held = HeldAnswer()
        try:
            # The prompt API's handler runs the body phase itself.
            verdict = await _chain(call, entry, body=False)
            if verdict is not None:
                refuse(call, held, verdict)  # type: ignore[arg-type]
            else:
                work = self.prompts.handle(call, held)  # type: ignore[arg-type]
                if work is not None:
                    await work
        except BaseException:
            finish(call, "client_disconnect")
            finish(ctx, "client_disconnect")
            raise
        self._answer(ctx, conn, ident, _tool_result(service, held))

    async def _checked(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        ident: Any,
        service: ServiceRuntime,
        tool: str,
        arguments: Any,
    ) -> None:
        """A server's tool, withheld when it changed since its version was published and the
        service says so (it is not what was approved); else called."""
        upstream = service.mcp
        assert upstream is not None
        if upstream.hide_changed and upstream.approved is not None:
            try:
                listed = await self.upstreams.tools(upstream)
            except UpstreamFailed:
                listed = []
            described = next((t for t in listed if t.get("name") == tool), None)
            if described is None or upstream.changed(described) is not None:
                if described is not None:
                    _tool_changed(service, tool, upstream.changed(described) or "")
                message = (
                    f"The tool {tool} changed since it was approved: a new version of "
                    f"{service.name} must be published to offer it again."
                )
                self._answer(ctx, conn, ident, McpError(INVALID_PARAMS, message))
                return
        await self._forwarded(ctx, conn, ident, service, tool, arguments)

    async def _forwarded(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        ident: Any,
        service: ServiceRuntime,
        tool: str,
        arguments: Any,
    ) -> None:
        """A tool of an upstream server, called there: the call passes its service's chain
        (subscription, limits) and is recorded as a call of it, the tool as its model."""
        assert service.mcp is not None
        entry = ctx.config.routes.exact.get(service.prefix + "/mcp", {}).get("POST")
        if entry is None:
            self._answer(ctx, conn, ident, McpError(INVALID_PARAMS, "Unknown tool"))
            return
        call = _tool_call(ctx, service, entry, arguments)
        call.model = f"{service.name.rpartition('/')[2]}.{tool}"
        answer: Any
        try:
            verdict = await _chain(call, entry, body=True)
            if verdict is not None:
                message = verdict.message if isinstance(verdict, GatewayError) else "refused"
                call.status, call.outcome = getattr(verdict, "status", 403), "refused"
                answer = _failed(f"{service.name} refused the call: {message}")
            else:
                call.upstream_started_at = time.monotonic()
                params = {"name": tool, "arguments": arguments if arguments is not None else {}}
                answer = await self.upstreams.request(service.mcp, "tools/call", params)
                call.status, call.outcome = 200, "completed"
                if not isinstance(answer, dict):
                    raise UpstreamFailed("a tools/call result that is not an object")
                # As the server answered, in the era the client speaks (older servers'
                # results lack what the newest protocol requires).
                answer = {**answer, "resultType": "complete"}
                if answer.get("isError"):
                    call.status, call.error_code = 502, "tool_error"
        except UpstreamFailed as failed:
            call.status, call.outcome = 502, "upstream_error"
            if failed.code is not None:
                answer = McpError(failed.code, failed.message)
            else:
                answer = _failed(f"The MCP server of {service.name} failed: {failed.message}")
        except BaseException:
            finish(call, "client_disconnect")
            finish(ctx, "client_disconnect")
            raise
        finish(call)
        self._answer(ctx, conn, ident, answer)


async def _chain(call: RequestContext, entry: RouteEntry, body: bool) -> Verdict:
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
    """The MCP server and its own tool name of `asked` (`service.tool`, a tool's own name may
    hold dots too): the longest service name it starts with."""
    for name in sorted(offered, key=len, reverse=True):
        if asked.startswith(name + "."):
            return offered[name], asked[len(name) + 1 :]
    return None, ""


# Changes already reported by this worker: (service, tool, fingerprint).
_REPORTED: set[tuple[int, str, str]] = set()


def _tool_changed(service: ServiceRuntime, tool: str, now: str) -> None:
    """An MCP server's tool no longer as approved (what it tells models changed: tool
    poisoning shows up so): an event, stored once whichever worker or node sees it first,
    which the recorder also writes to the audit log."""
    seen = (service.id, tool, now)
    if seen in _REPORTED:
        return
    _REPORTED.add(seen)
    assert service.mcp is not None
    before = (service.mcp.approved or {}).get(tool)
    log.warning("MCP tool %s of %s changed since its version was published", tool, service.name)
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
        event_id=f"mcp-tool-{service.id}-{hashlib.sha256(f'{tool}/{now}'.encode()).hexdigest()[:24]}",
    )


def _tool_call(
    ctx: RequestContext, service: ServiceRuntime, entry: RouteEntry, arguments: Any
) -> RequestContext:
    """The tool call as a call of the prompt API: the MCP request's key and client, the
    arguments as its body."""
    incoming = ctx.request
    headers = [
        *[
            (k, v)
            for k, v in incoming.headers
            if k not in (b"content-length", b"x-tollway-call", b"accept", b"x-tollway-version")
        ],
        (b"x-tollway-call", b"mcp"),
    ]
    request = Request(
        "POST",
        service.prefix,
        b"",
        headers,
        orjson.dumps(arguments),
        "1.1",
        True,
        incoming.request_id + b"-tool",
        incoming.client_address,
    )
    return RequestContext(request, ctx.config, entry)


def _tool_result(service: ServiceRuntime, held: HeldAnswer) -> Any:
    if held.sent is None:
        return _failed("The call ended without an answer.")
    status, _, body = held.sent
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    said = error.get("message") if isinstance(error, dict) else None
    if status == 400 and isinstance(error, dict) and error.get("code") == "invalid_input":
        return McpError(INVALID_PARAMS, said or "The arguments do not fit the tool's input.")
    if status != 200:
        return _failed(f"{service.name} answered {status}: {said or body[:200]!r}")
    structured = service.prompt is not None and service.prompt.primary.output is not None
    text = orjson.dumps(answer).decode() if structured else str((answer or {}).get("text", ""))
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": text}],
        "isError": False,
        "resultType": "complete",
    }
    if structured and isinstance(answer, dict):
        result["structuredContent"] = answer
    return result


def _failed(message: str) -> dict[str, Any]:
    return {
        "content": [{"type": "text", "text": message}],
        "isError": True,
        "resultType": "complete",
    }


def _tool(name: str, service: ServiceRuntime) -> dict[str, Any]:
    assert service.prompt is not None
    version = service.prompt.primary
    tool: dict[str, Any] = {
        "name": name,
        "title": service.name,
        "description": f"The prompt API {service.name} (answered by a model; version "
        f"{version.number}).",
        "inputSchema": version.template.input_schema,
        "annotations": {"readOnlyHint": True, "openWorldHint": True},
    }
    output = version.output
    if output is not None and output.schema.get("type") == "object":
        tool["outputSchema"] = output.schema
    return tool


def _prompt(name: str, service: ServiceRuntime) -> dict[str, Any]:
    assert service.prompt is not None
    schema = service.prompt.primary.template.input_schema
    required = set(schema.get("required") or ())
    arguments = [
        {
            "name": prop,
            "description": str(
                (spec or {}).get("description") or f"{prop} ({(spec or {}).get('type', 'any')})"
            ),
            "required": prop in required,
        }
        for prop, spec in (schema.get("properties") or {}).items()
    ]
    return {
        "name": name,
        "title": service.name,
        "description": f"The prompt of {service.name}",
        "arguments": arguments,
    }


def _listed(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}


def _json(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


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
    "resources": {},
}
_INSTRUCTIONS = (
    "Tools here are the company's prompt APIs: each takes the JSON input its schema describes "
    "and answers with its output."
)
