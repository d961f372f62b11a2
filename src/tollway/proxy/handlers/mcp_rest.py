"""REST services' operations (from their OpenAPI documents) as MCP tools
(proxy/handlers/mcp.py, config/rest_operations.py).

A tool call becomes the HTTP request the operation describes, under the service's prefix,
and goes as any call of the service goes: its chain (subscription, limits), then the REST
proxy (its targets, balancing, retries, health), recorded as one of its calls with the
operation as its model. The answer comes back as text, and as `structuredContent` when the
operation's success answer is a JSON object; a status of 400 or more is a tool error that
gives the status and the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema
import orjson

from tollway.config.rest_operations import RestOperation
from tollway.errors import GatewayError
from tollway.proxy.handlers.calls import HeldAnswer
from tollway.proxy.handlers.mcp_calls import (
    INVALID_PARAMS,
    McpError,
    failed,
    loads_or_none,
    tool_call,
    tool_chain,
    unknown_tool,
)
from tollway.proxy.handlers.passthrough import RestProxy
from tollway.proxy.replies import finish, refuse

if TYPE_CHECKING:
    from tollway.config.snapshot import ServiceRuntime
    from tollway.policies.context import RequestContext

# The most of an answer a tool result carries (the rest is cut, and says so).
MAX_ANSWER_BYTES = 1024 * 1024


class RestTools:
    __slots__ = ("rest",)

    def __init__(self, rest: RestProxy) -> None:
        self.rest = rest

    async def call(
        self, ctx: RequestContext, service: ServiceRuntime, name: str, arguments: Any
    ) -> Any:
        operation = service.operations.get(name)
        entry = ctx.config.routes.exact.get(service.prefix, {}).get("*")
        if operation is None or entry is None:
            return unknown_tool(f"{service.name}.{name}")
        given = arguments if arguments is not None else {}
        problem = _misfit(operation, given)
        if problem is not None:
            return McpError(INVALID_PARAMS, f"The arguments do not fit {name}: {problem}")
        try:
            path, query, headers = operation.request(given)
        except ValueError as exc:
            return McpError(INVALID_PARAMS, f"The arguments do not fit {name}: {exc}")
        body = orjson.dumps(given["body"]) if operation.body and "body" in given else b""
        sent = [(k.encode(), v.encode("utf-8")) for k, v in headers]
        if body:
            sent.append((b"content-type", b"application/json"))
        call = tool_call(ctx, entry, operation.method, service.prefix + path, body, query, sent)
        call.model = f"{service.name.rpartition('/')[2]}.{name}"
        answer = HeldStream()
        try:
            verdict = await tool_chain(call, entry, body=True)
            if verdict is not None:
                refuse(call, answer, verdict)  # type: ignore[arg-type]
                message = verdict.message if isinstance(verdict, GatewayError) else "refused"
                return failed(f"{service.name} refused the call: {message}")
            work = self.rest.handle(call, answer)  # type: ignore[arg-type]
            if work is not None:
                await work
        except BaseException:
            finish(call, "client_disconnect")
            raise
        finish(call)
        return _result(service, operation, answer)


def _misfit(operation: RestOperation, arguments: Any) -> str | None:
    """Why `arguments` do not fit the operation's input schema, or None."""
    if not isinstance(arguments, dict):
        return "the arguments are an object"
    validator = jsonschema.Draft202012Validator(dict(operation.input_schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
    return f"{where}: {error.message}"


def _result(service: ServiceRuntime, operation: RestOperation, answer: HeldStream) -> Any:
    if answer.sent is None:
        return failed(f"{service.name} ended the call without an answer.")
    status, headers, body = answer.sent
    kind = next((v for k, v in headers if k == b"content-type"), b"")
    text = body.decode("utf-8", "replace")
    if answer.cut:
        text += f"\n[the answer was cut at {MAX_ANSWER_BYTES} bytes]"
    if answer.broken:
        return failed(f"{service.name} broke off its answer ({status}): {text[:2000]}")
    if status >= 400:
        parsed = loads_or_none(body)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        return failed(f"{service.name} answered {status}: {said or text[:2000]}")
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": text}],
        "isError": False,
        "resultType": "complete",
    }
    if operation.output_schema is not None and b"json" in kind and not answer.cut:
        parsed = loads_or_none(body)
        if isinstance(parsed, dict):
            result["structuredContent"] = parsed
    return result


class HeldStream(HeldAnswer):
    """Stands for the client's connection while a REST answer comes: keeps the whole answer
    (up to MAX_ANSWER_BYTES), whether it comes in one piece or streamed."""

    __slots__ = ("_chunks", "_headers", "_kept", "_status", "broken", "cut")

    def __init__(self) -> None:
        super().__init__()
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._kept = 0
        self.cut = False
        self.broken = False

    def start_stream(
        self, status: int, headers: list[tuple[bytes, bytes]], on_interrupt: Any = None
    ) -> None:
        self._status = status
        self._headers = headers

    def write_chunk(self, data: bytes) -> None:
        room = MAX_ANSWER_BYTES - self._kept
        if len(data) > room:
            self.cut = True
            data = data[:room]
        if data:
            self._chunks.append(data)
            self._kept += len(data)

    async def drain(self) -> None:
        return None

    def end_stream(self) -> None:
        self.send(self._status, self._headers, b"".join(self._chunks))

    def abort(self) -> None:
        # An answer broken off mid-way: what came, marked as not whole.
        self.broken = True
        self.send(self._status or 502, self._headers, b"".join(self._chunks))

    def send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        if len(body) > MAX_ANSWER_BYTES:
            body, self.cut = body[:MAX_ANSWER_BYTES], True
        super().send(status, headers, body)
