"""Prompt APIs as MCP tools and prompts (proxy/handlers/mcp.py).

A tool call is a call of the prompt API: it goes through the API's own route (its chain:
subscription, limits, budgets), is answered by the same handler and is recorded as one call,
with `x-tollway-call: mcp`. Input that does not fit the API is the protocol's invalid-params
error naming the field; a refusal or a model failure is a tool result with `isError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tollway.llm.prompt_template import InputError
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
from tollway.proxy.handlers.prompt_api import PromptApis
from tollway.proxy.replies import finish, refuse

if TYPE_CHECKING:
    from tollway.config.snapshot import ServiceRuntime
    from tollway.policies.context import RequestContext


class PromptTools:
    __slots__ = ("prompts",)

    def __init__(self, prompts: PromptApis) -> None:
        self.prompts = prompts

    async def call(self, ctx: RequestContext, service: ServiceRuntime, arguments: Any) -> Any:
        """The tool's result (or McpError) of calling the prompt API with `arguments`."""
        entry = ctx.config.routes.exact.get(service.prefix, {}).get("POST")
        if entry is None:
            return unknown_tool(service.name)
        call = tool_call(ctx, entry, "POST", service.prefix, orjson.dumps(arguments or {}))
        held = HeldAnswer()
        try:
            # The prompt API's handler runs the body phase itself.
            verdict = await tool_chain(call, entry, body=False)
            if verdict is not None:
                refuse(call, held, verdict)  # type: ignore[arg-type]
            else:
                work = self.prompts.handle(call, held)  # type: ignore[arg-type]
                if work is not None:
                    await work
        except BaseException:
            finish(call, "client_disconnect")
            raise
        return _result(service, held)


def prompt_tool(name: str, service: ServiceRuntime) -> dict[str, Any]:
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


def prompt_entry(name: str, service: ServiceRuntime) -> dict[str, Any]:
    """The prompt API's template as an MCP prompt: its arguments are the input's
    properties."""
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


def prompt_messages(service: ServiceRuntime, given: Any) -> dict[str, Any]:
    """`prompts/get`: the template rendered with the arguments (MCP gives them as strings;
    those of a non-string property are read as JSON)."""
    assert service.prompt is not None
    template = service.prompt.primary.template
    properties = template.input_schema.get("properties") or {}
    variables = {}
    for name, value in given.items() if isinstance(given, dict) else ():
        schema = properties.get(name) or {}
        wants_text = isinstance(schema, dict) and schema.get("type") == "string"
        parsed = value if wants_text or not isinstance(value, str) else _json(value)
        variables[name] = parsed
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


def _result(service: ServiceRuntime, held: HeldAnswer) -> Any:
    if held.sent is None:
        return failed("The call ended without an answer.")
    status, _, body = held.sent
    answer = loads_or_none(body)
    error = answer.get("error") if isinstance(answer, dict) else None
    said = error.get("message") if isinstance(error, dict) else None
    if status == 400 and isinstance(error, dict) and error.get("code") == "invalid_input":
        return McpError(INVALID_PARAMS, said or "The arguments do not fit the tool's input.")
    if status != 200:
        return failed(f"{service.name} answered {status}: {said or body[:200]!r}")
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


def _json(value: str) -> Any:
    parsed = loads_or_none(value.encode())
    return value if parsed is None and value != "null" else parsed
