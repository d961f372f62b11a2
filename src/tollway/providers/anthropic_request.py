"""Canonical (OpenAI Chat Completions) request -> Anthropic Messages API request.

Parameters, each either mapped, dropped by a rule documented here, or refused with a 400:
- mapped: messages (leading system/developer -> `system`; a later one -> a `system` message in
  place on models that take one (`MID_CONVERSATION_SYSTEM`, right after a user turn), else a
  marked note in the user turn; tool results -> `tool_result` blocks, first in their turn;
  tool calls -> `tool_use`; images by URL or data URL), max_tokens / max_completion_tokens
  (default 4096: Anthropic requires one), temperature (0-1 only), top_p, top_k, stop, tools,
  tool_choice, parallel_tool_calls, user (-> metadata.user_id), reasoning_effort (-> thinking
  budget low 1024 / medium 4096 / high 16384), thinking (as given), response_format
  json_schema (-> `output_config.format`, objects closed with `additionalProperties: false`
  as Anthropic requires; on models without structured outputs, `NO_OUTPUT_FORMAT`, a forced
  tool whose input is the JSON) and json_object (the forced tool), stream.
- dropped: seed, frequency_penalty, presence_penalty, store, metadata, service_tier,
  prompt_cache_key, stream_options (usage is always reported; the gateway decides whether the
  client gets a usage chunk). `cache_control` on parts and tools is passed on.
- refused: n > 1, logprobs, top_logprobs, logit_bias, audio, modalities, prediction,
  web_search_options, response_format together with tools when it rides on the forced tool,
  and anything else unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.errors import GatewayError
from tollway.llm.canonical import add_turn, call_arguments
from tollway.providers.base import (
    COMMON_DROPPED,
    COMMON_MAPPED,
    JSON_TOOL,
    SYSTEM_ROLES,
    THINKING_BUDGETS,
    ParameterRules,
    content_text,
    json_mode,
    leading_system,
    system_note,
)

# Models that take `{"role": "system"}` inside `messages` (Anthropic documents Claude Opus 4.8,
# as of 2026-11); elsewhere a mid-conversation system message is a marked note in a user turn.
MID_CONVERSATION_SYSTEM = ("claude-opus-4-8",)
# Models without structured outputs (`output_config.format`): JSON mode rides on a forced tool.
NO_OUTPUT_FORMAT = (
    "claude-instant",
    "claude-2",
    "claude-3",
    "claude-opus-4-0",
    "claude-opus-4-1",
    "claude-opus-4-2025",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2025",
)
DEFAULT_MAX_TOKENS = 4096
RULES = ParameterRules(
    "Anthropic",
    COMMON_MAPPED | {"parallel_tool_calls", "thinking", "user"},
    COMMON_DROPPED | {"frequency_penalty", "presence_penalty", "seed"},
    budgets=THINKING_BUDGETS,
)


def anthropic_body(request: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """The Messages API request body for a canonical request."""
    RULES.check(request)
    system, messages = messages_to_anthropic(request["messages"], model)
    max_tokens = (
        request.get("max_completion_tokens") or request.get("max_tokens") or DEFAULT_MAX_TOKENS
    )
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = system
    temperature = request.get("temperature")
    if temperature is not None:
        if not 0 <= temperature <= 1:
            raise RULES.refuse("temperature", "must be between 0 and 1")
        body["temperature"] = temperature
    for key in ("top_p", "top_k"):
        if request.get(key) is not None:
            body[key] = request[key]
    stop = request.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.get("user"):
        body["metadata"] = {"user_id": request["user"]}
    _thinking(request, body)
    _tools(request, body, model)
    if stream:
        body["stream"] = True
    return body


def structured_outputs(model: str) -> bool:
    """Whether the model takes `output_config.format` (a JSON schema for its answer)."""
    return not model.rsplit("/", 1)[-1].startswith(NO_OUTPUT_FORMAT)


def json_by_tool(request: Mapping[str, Any], model: str) -> bool:
    """Whether the request's JSON mode rides on the forced JSON tool for this model: always
    for json_object (structured outputs take a schema), for json_schema where the model has
    no structured outputs or the request gives no schema."""
    if not json_mode(request):
        return False
    fmt = request["response_format"]
    schema = (fmt.get("json_schema") or {}).get("schema")
    return fmt.get("type") == "json_object" or not schema or not structured_outputs(model)


def closed_schema(schema: Any) -> Any:
    """A JSON schema with every object closed (`additionalProperties: false` where it says
    nothing), as Anthropic's structured outputs require; the caller's schema is not changed."""
    if isinstance(schema, list):
        return [closed_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed_schema(value) for key, value in schema.items()}
    for key in ("properties", "$defs", "definitions", "patternProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: closed_schema(sub) for name, sub in schema[key].items()}
    if (schema.get("type") == "object" or "properties" in schema) and (
        "additionalProperties" not in schema
    ):
        out["additionalProperties"] = False
    return out


# -- request pieces -----------------------------------------------------------------------


def messages_to_anthropic(
    messages: list[dict[str, Any]], model: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    leading = leading_system(messages)
    in_place = model.rsplit("/", 1)[-1].startswith(MID_CONVERSATION_SYSTEM)
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in SYSTEM_ROLES and i < leading:
            system.extend(_blocks(message.get("content"), f"messages[{i}]", text_only=True))
            continue
        if role in SYSTEM_ROLES:
            blocks = _blocks(message.get("content"), f"messages[{i}]", text_only=True)
            if in_place and out and out[-1]["role"] in ("user", "system"):
                add_turn(out, "system", blocks, "content")
            else:
                note: dict[str, Any] = {
                    "type": "text",
                    "text": system_note(content_text(message.get("content"))),
                }
                if blocks and "cache_control" in blocks[-1]:
                    note["cache_control"] = blocks[-1]["cache_control"]
                add_turn(out, "user", [note], "content")
            continue
        if role == "user":
            blocks = _blocks(message.get("content"), f"messages[{i}]")
        elif role == "assistant":
            blocks = [dict(b) for b in message.get("thinking_blocks") or []]
            if message.get("content"):
                blocks.extend(_blocks(message["content"], f"messages[{i}]", text_only=True))
            for call in message.get("tool_calls") or []:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": (call.get("function") or {}).get("name"),
                        "input": call_arguments(call, f"messages[{i}]"),
                    }
                )
        elif role == "tool":
            content = message.get("content")
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
            }
            result["content"] = (
                content if isinstance(content, str) else _blocks(content, f"messages[{i}]")
            )
            role, blocks = "user", [result]
        else:
            raise GatewayError(
                400, f"messages[{i}]: role {role!r} is not supported.", param=f"messages[{i}].role"
            )
        add_turn(out, role, blocks, "content")
    for turn in out:
        # Anthropic wants a user turn's tool results before anything else in it.
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block.get("type") != "tool_result")
    return system, out


def _blocks(content: Any, where: str, text_only: bool = False) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
        elif kind == "image_url" and not text_only:
            block = _image(part.get("image_url") or {}, where)
        else:
            raise GatewayError(
                400,
                f"{where}: content part type {kind!r} is not supported for Anthropic models.",
                param=where,
                code="unsupported_parameter",
            )
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _image(image: dict[str, Any], where: str) -> dict[str, Any]:
    url = image.get("url") or ""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0]
        if ";base64" not in header or not media_type:
            raise GatewayError(400, f"{where}: image data URLs must be base64.", param=where)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise GatewayError(400, f"{where}: image_url.url must be an http(s) or data URL.", param=where)


def _thinking(request: dict[str, Any], body: dict[str, Any]) -> None:
    thinking = request.get("thinking")
    effort = request.get("reasoning_effort")
    if thinking is None and effort is not None:
        thinking = {"type": "enabled", "budget_tokens": RULES.budget(effort)}
    if thinking is None:
        return
    body["thinking"] = thinking
    budget = thinking.get("budget_tokens") or 0
    if body["max_tokens"] <= budget:
        # Anthropic counts thinking inside max_tokens; keep the room the caller asked for.
        body["max_tokens"] = budget + body["max_tokens"]
    if body.get("temperature") not in (None, 1):
        raise RULES.refuse("temperature", "must be 1 (or unset) when thinking is enabled")


def _tools(request: dict[str, Any], body: dict[str, Any], model: str) -> None:
    tools = request.get("tools") or []
    fmt = request.get("response_format") or {}
    if json_mode(request) and not json_by_tool(request, model):
        schema = fmt["json_schema"]["schema"]
        body["output_config"] = {"format": {"type": "json_schema", "schema": closed_schema(schema)}}
    elif json_mode(request):
        if tools:
            raise RULES.refuse("response_format", "cannot be combined with tools")
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        body["tools"] = [
            {
                "name": JSON_TOOL,
                "description": "Respond with the JSON answer.",
                "input_schema": schema,
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        return
    elif fmt and fmt.get("type") != "text":
        raise RULES.refuse("response_format", f"type {fmt.get('type')!r} is not supported")
    if not tools:
        if request.get("tool_choice") not in (None, "none", "auto"):
            raise RULES.refuse("tool_choice", "needs tools")
        return
    converted = []
    for tool, function in zip(tools, RULES.function_tools(request), strict=True):
        entry: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        if "cache_control" in tool:
            entry["cache_control"] = tool["cache_control"]
        converted.append(entry)
    body["tools"] = converted
    choice = request.get("tool_choice")
    mapped: dict[str, Any]
    if choice in (None, "auto"):
        mapped = {"type": "auto"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        mapped = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise RULES.refuse("tool_choice", f"value {choice!r} is not supported")
    if request.get("parallel_tool_calls") is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    if choice is not None or "disable_parallel_tool_use" in mapped:
        body["tool_choice"] = mapped
