"""Anthropic Messages API <-> canonical (OpenAI Chat Completions) mapping.

Parameters, each either mapped, dropped by a rule documented here, or refused with a 400:
- mapped: messages (system/developer -> `system`; tool results -> `tool_result` blocks; tool
  calls -> `tool_use`; images by URL or data URL), max_tokens / max_completion_tokens (default
  4096: Anthropic requires one), temperature (0-1 only), top_p, top_k, stop, tools, tool_choice,
  parallel_tool_calls, user (-> metadata.user_id), reasoning_effort (-> thinking budget
  low 1024 / medium 4096 / high 16384), thinking (as given), response_format json_object and
  json_schema (a forced tool whose input is the JSON; answered as message content), stream.
- dropped: seed, frequency_penalty, presence_penalty, store, metadata, service_tier,
  prompt_cache_key, stream_options (usage is always reported; the gateway decides whether the
  client gets a usage chunk). `cache_control` on parts and tools is passed on.
- refused: n > 1, logprobs, top_logprobs, logit_bias, audio, modalities, prediction,
  web_search_options, response_format together with tools, and anything else unknown.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm.canonical import (
    CanonicalStream,
    add_turn,
    assistant_message,
    call_arguments,
    choice,
    completion,
    tool_call,
)
from tollway.llm.sse import SseParser
from tollway.llm.usage import from_anthropic
from tollway.providers.base import (
    JSON_TOOL,
    ParameterRules,
    ProviderStreamError,
    UpstreamCall,
    error_message,
    error_object,
    reads_upstream,
)

API_VERSION = b"2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_DROPPED = {
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "store",
    "metadata",
    "service_tier",
    "prompt_cache_key",
    "stream_options",
    "safety_identifier",
}
_MAPPED = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
    "thinking",
    "response_format",
    "stream",
    "n",
}
RULES = ParameterRules(
    "Anthropic", frozenset(_MAPPED), frozenset(_DROPPED), budgets=_THINKING_BUDGET
)

# Anthropic error type -> (status for the client, OpenAI error type, code)
_ERRORS = {
    "invalid_request_error": (400, "invalid_request_error", "invalid_request"),
    "authentication_error": (401, "invalid_request_error", "invalid_api_key"),
    "permission_error": (403, "permission_error", "permission_denied"),
    "not_found_error": (404, "invalid_request_error", "model_not_found"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_error": (429, "rate_limit_error", "rate_limit_exceeded"),
    "api_error": (500, "server_error", "upstream_error"),
    "overloaded_error": (503, "server_error", "overloaded"),
}


class AnthropicAdapter:
    """Chat completions over Anthropic's Messages API."""

    # -- request ---------------------------------------------------------------------------

    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        RULES.check(request)
        system, messages = messages_to_anthropic(request["messages"])
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
        _tools(request, body)
        if stream:
            body["stream"] = True
        return UpstreamCall("/messages", orjson.dumps(body))

    # -- response --------------------------------------------------------------------------

    @reads_upstream
    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        message = orjson.loads(body)
        text: list[str] = []
        reasoning: list[str] = []
        thinking_blocks: list[dict[str, Any]] = []
        tool_calls: list[dict[str, Any]] = []
        finish = STOP_REASONS.get(message.get("stop_reason") or "end_turn", "stop")
        for block in message.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "tool_use" and block.get("name") == JSON_TOOL:
                text.append(orjson.dumps(block.get("input", {})).decode())
                finish = "stop"
            elif kind == "tool_use":
                tool_calls.append(tool_call(block["id"], block["name"], block.get("input")))
            elif kind == "thinking":
                reasoning.append(block.get("thinking", ""))
                thinking_blocks.append(block)
            elif kind == "redacted_thinking":
                thinking_blocks.append(block)
        out = assistant_message("".join(text), tool_calls, "".join(reasoning), thinking_blocks)
        return completion(
            message.get("id", ""),
            message.get("model", model),
            [choice(out, finish)],
            from_anthropic(message.get("usage") or {}),
        )

    def chat_stream(self, model: str) -> AnthropicStream:
        return AnthropicStream(model)

    def error(self, status: int, body: bytes) -> GatewayError:
        return error_from_anthropic(status, body)


def error_from_anthropic(status: int, body: bytes) -> GatewayError:
    error = error_object(body)
    kind = error.get("type")
    message = error_message(error, body, status)
    mapped_status, openai_type, code = _ERRORS.get(
        kind or "", (status, "upstream_error", "upstream_error")
    )
    if kind == "invalid_request_error" and "prompt is too long" in message:
        code = "context_length_exceeded"
    return GatewayError(mapped_status, message, type=openai_type, code=code)


# -- request pieces -----------------------------------------------------------------------


def messages_to_anthropic(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content"), f"messages[{i}]", text_only=True))
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


def _tools(request: dict[str, Any], body: dict[str, Any]) -> None:
    tools = request.get("tools") or []
    fmt = request.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
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
    if fmt and fmt.get("type") != "text":
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


# -- stream -------------------------------------------------------------------------------


class AnthropicStream(CanonicalStream):
    """Anthropic's event sequence -> canonical chat.completion.chunk dicts."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.parser = SseParser()
        self.raw_usage: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self.done = False
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.json_blocks: set[int] = set()
        self.thinking_text: dict[int, str] = {}

    @property
    def usage(self) -> dict[str, Any] | None:
        return from_anthropic(self.raw_usage) if self.raw_usage else None

    @reads_upstream
    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self.parser.feed(data):
            if event.event == "ping" or not event.data:
                continue
            payload = orjson.loads(event.data)
            kind = payload.get("type") or event.event
            handler = getattr(self, "_on_" + str(kind), None)
            if handler is not None:
                out.extend(handler(payload))
        return out

    @reads_upstream
    def finish(self) -> list[dict[str, Any]]:
        if not self.done:
            raise ProviderStreamError(
                GatewayError(
                    502,
                    "Anthropic ended the stream before message_stop.",
                    code="upstream_stream_truncated",
                    type="upstream_error",
                )
            )
        return []

    def _on_message_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        message = payload.get("message") or {}
        self.id = message.get("id", "")
        self.model = message.get("model") or self.model
        self.raw_usage.update(message.get("usage") or {})
        return [self.chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        index, block = payload.get("index", 0), payload.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            if block.get("name") == JSON_TOOL:
                self.json_blocks.add(index)
                return []
            position = len(self.tool_index)
            self.tool_index[index] = position
            return [
                self.chunk(
                    {
                        "tool_calls": [
                            {
                                "index": position,
                                "id": block.get("id"),
                                "type": "function",
                                "function": {"name": block.get("name"), "arguments": ""},
                            }
                        ]
                    }
                )
            ]
        if kind == "text" and block.get("text"):
            return [self.chunk({"content": block["text"]})]
        if kind == "thinking":
            self.thinking_text[index] = block.get("thinking", "")
        if kind == "redacted_thinking":
            return [self.chunk({"thinking_blocks": [block]})]
        return []

    def _on_content_block_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        index, delta = payload.get("index", 0), payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self.chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            partial = delta.get("partial_json", "")
            if index in self.json_blocks:
                return [self.chunk({"content": partial})] if partial else []
            return [
                self.chunk(
                    {
                        "tool_calls": [
                            {
                                "index": self.tool_index.get(index, 0),
                                "function": {"arguments": partial},
                            }
                        ]
                    }
                )
            ]
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            self.thinking_text[index] = self.thinking_text.get(index, "") + text
            return [self.chunk({"reasoning_content": text})]
        if kind == "signature_delta":
            # The whole block, signature included, so that a client can send it back.
            return [
                self.chunk(
                    {
                        "thinking_blocks": [
                            {
                                "type": "thinking",
                                "thinking": self.thinking_text.get(index, ""),
                                "signature": delta.get("signature", ""),
                            }
                        ]
                    }
                )
            ]
        return []

    def _on_message_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        reason = (payload.get("delta") or {}).get("stop_reason")
        if reason:
            self.finish_reason = "stop" if self.json_blocks else STOP_REASONS.get(reason, "stop")
        self.raw_usage.update(
            {k: v for k, v in (payload.get("usage") or {}).items() if v is not None}
        )
        return []

    def _on_message_stop(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        self.done = True
        return self.closing(self.finish_reason or "stop", self.usage)

    def _on_error(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        raise ProviderStreamError(error_from_anthropic(500, orjson.dumps(payload)))
