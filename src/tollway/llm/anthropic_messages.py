"""Anthropic's Messages API as a client-facing format: request -> canonical, and canonical
response and stream -> Anthropic's, so that Anthropic clients can use any provider.

Rules where the canonical form (OpenAI Chat Completions) has no exact counterpart:
- `stop_reason` "stop_sequence" cannot be told apart from "end_turn" (OpenAI does not say which
  stop ended a reply): both come back as "end_turn", with `stop_sequence` null.
- `top_k` is dropped for non-Anthropic providers; `thinking.budget_tokens` becomes
  `reasoning_effort` (up to 2048 low, up to 8192 medium, above that high).
- `document`, `search_result` and server-tool blocks are refused with a 400: only Anthropic's own
  API can honour them, and requests to Anthropic itself are passed through untouched.
- a `{"role": "system"}` message inside `messages` (the mid-conversation-system beta Claude Code
  uses) stays a system message at its place in the canonical conversation; each adapter carries
  it in its provider's way. Its text blocks only: tool_addition / tool_removal blocks are
  refused. One with `clear_at: "next_user_message"` that a later user message follows is no
  longer shown to the model, so it is left out. Its per-message `output_config` is dropped.
- `output_config.format` (and the older beta's top-level `output_format`), a JSON schema, becomes
  `response_format` json_schema (named "response", not strict: Anthropic's schemas need not meet
  OpenAI's strict rules). `output_config.effort` and adaptive thinking are dropped: the target
  model decides how hard to think.
- usage: `input_tokens` excludes cached tokens, which are `cache_read_input_tokens`;
  `output_tokens_details.thinking_tokens` is the canonical `reasoning_tokens`, when reported.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.errors import GatewayError

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> bytes:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request")


# -- request ------------------------------------------------------------------------------


def to_chat_request(request: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as a canonical chat request."""
    if not isinstance(request.get("max_tokens"), int) or request["max_tokens"] < 1:
        raise _bad("max_tokens: Field required (a positive integer).", "max_tokens")
    raw_messages = request.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("messages: Field required (a non-empty array).", "messages")
    messages: list[dict[str, Any]] = []
    system = request.get("system")
    if system:
        messages.append(
            {
                "role": "system",
                "content": system
                if isinstance(system, str)
                else [_text_part(b, "system") for b in system],
            }
        )
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict):
            raise _bad(f"messages.{i}: must be an object.", f"messages.{i}")
        if message.get("role") == "system":
            if not _cleared(message, raw_messages[i + 1 :]):
                messages.append(_system_message(message, f"messages.{i}"))
            continue
        messages.extend(_message(message, f"messages.{i}"))
    out: dict[str, Any] = {
        "model": request.get("model"),
        "messages": messages,
        "max_tokens": request["max_tokens"],
    }
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            out[key] = request[key]
    if request.get("stop_sequences"):
        out["stop"] = list(request["stop_sequences"])
    user = (request.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    thinking = request.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens") or 0
        out["reasoning_effort"] = (
            "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
        )
    _tools(request, out)
    _output_format(request, out)
    if request.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _cleared(message: dict[str, Any], later: list[Any]) -> bool:
    """A system message that asked to be shown only until the next user message, once one
    has come."""
    return message.get("clear_at") == "next_user_message" and any(
        isinstance(m, dict) and m.get("role") == "user" for m in later
    )


def _system_message(message: dict[str, Any], where: str) -> dict[str, Any]:
    """A mid-conversation system message, kept in its place as a canonical system message."""
    content = message.get("content")
    if isinstance(content, str):
        return {"role": "system", "content": content}
    if not isinstance(content, list) or not content:
        raise _bad(f"{where}.content: must be a string or an array of text blocks.", where)
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text":
            raise _bad(
                f"{where}.content.{j}: block type {kind!r} in a system message is "
                "not supported by this provider (only Anthropic's own API honours it).",
                f"{where}.content.{j}",
            )
    return {
        "role": "system",
        "content": [_text_part(b, f"{where}.content.{j}") for j, b in enumerate(content)],
    }


def _output_format(request: dict[str, Any], out: dict[str, Any]) -> None:
    """`output_config.format` (or the beta's `output_format`) as canonical response_format."""
    config = request.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    legacy = request.get("output_format")
    if fmt is not None and legacy is not None:
        raise _bad(
            "output_format: use only output_config.format (output_format is deprecated).",
            "output_format",
        )
    param = "output_config.format" if fmt is not None else "output_format"
    fmt = fmt if fmt is not None else legacy
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad(f"{param}.type: must be 'json_schema'.", f"{param}.type")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad(f"{param}.schema: Field required (a JSON schema object).", f"{param}.schema")
    out["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }


def _message(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    role = message.get("role")
    content = message.get("content")
    if role not in ("user", "assistant"):
        raise _bad(f"{where}.role: must be 'user', 'assistant' or 'system'.", f"{where}.role")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad(f"{where}.content: must be a string or an array of blocks.", where)
    if role == "assistant":
        return [_assistant(content, where)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "tool_result":
            result = block.get("content")
            text = (
                result
                if isinstance(result, str)
                else "".join(b.get("text", "") for b in result or [] if b.get("type") == "text")
            )
            if block.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
        elif kind == "text":
            parts.append(_text_part(block, f"{where}.content.{j}"))
        elif kind == "image":
            parts.append(_image_part(block, f"{where}.content.{j}"))
        else:
            raise _bad(
                f"{where}.content.{j}: block type {kind!r} is not supported by this provider.",
                f"{where}.content.{j}",
            )
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant(content: list[dict[str, Any]], where: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise _bad(
                f"{where}.content.{j}: block type {kind!r} is not supported by this provider.",
                f"{where}.content.{j}",
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        out["tool_calls"] = calls
    if thinking:
        out["thinking_blocks"] = thinking
        out["reasoning_content"] = "".join(b.get("thinking", "") for b in thinking)
    return out


def _text_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block.get("type") != "text":
        raise _bad(f"{where}: expected a text block.", where)
    part: dict[str, Any] = {"type": "text", "text": block.get("text", "")}
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = source.get("url", "")
    else:
        raise _bad(f"{where}.source: type must be 'base64' or 'url'.", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _tools(request: dict[str, Any], out: dict[str, Any]) -> None:
    tools = request.get("tools")
    if tools:
        converted = []
        for i, tool in enumerate(tools):
            if "input_schema" not in tool:
                raise _bad(
                    f"tools.{i}: only custom tools (with input_schema) are supported by "
                    "this provider.",
                    f"tools.{i}",
                )
            function = {"name": tool.get("name"), "parameters": tool["input_schema"]}
            if tool.get("description"):
                function["description"] = tool["description"]
            converted.append({"type": "function", "function": function})
        out["tools"] = converted
    choice = request.get("tool_choice")
    if choice:
        kind = choice.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False


# -- response -----------------------------------------------------------------------------


def usage_to_anthropic(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Canonical usage in Anthropic's shape; reasoning tokens, where the provider counts them,
    as `output_tokens_details.thinking_tokens` (a part of `output_tokens`, as Anthropic's)."""
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    out: dict[str, Any] = {
        "input_tokens": max(0, (usage.get("prompt_tokens") or 0) - cached - written),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if isinstance(reasoning, int):
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


def message_id(chat_id: str) -> str:
    return chat_id if chat_id.startswith("msg_") else "msg_" + (chat_id or "tollway")


def to_message(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """A canonical chat.completion as an Anthropic message."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = [dict(b) for b in message.get("thinking_blocks") or []]
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"_raw_arguments": function.get("arguments")}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    return {
        "id": message_id(completion.get("id", "")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(completion.get("usage")),
    }


class MessageEvents:
    """Canonical chat.completion.chunk dicts -> Anthropic's stream events (as SSE bytes)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block: int = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # tool call index -> block index
        self.stop_reason = "end_turn"
        self.usage: dict[str, Any] | None = None

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, **payload}
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        return self._event(
            "message_start",
            {
                "message": {
                    "id": message_id(chunk.get("id", "")),
                    "type": "message",
                    "role": "assistant",
                    "model": chunk.get("model") or self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }
            },
        )

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.block += 1
        self.block_kind = kind
        return out + self._event(
            "content_block_start", {"index": self.block, "content_block": block}
        )

    def _close(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return self._event("content_block_stop", {"index": self.block})

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                if self.block_kind != "thinking":
                    out += self._open(
                        "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                    )
                out += self._event(
                    "content_block_delta",
                    {
                        "index": self.block,
                        "delta": {"type": "thinking_delta", "thinking": delta["reasoning_content"]},
                    },
                )
            for block in delta.get("thinking_blocks") or []:
                if block.get("signature") and self.block_kind == "thinking":
                    out += self._event(
                        "content_block_delta",
                        {
                            "index": self.block,
                            "delta": {"type": "signature_delta", "signature": block["signature"]},
                        },
                    )
            if delta.get("content"):
                if self.block_kind != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += self._event(
                    "content_block_delta",
                    {
                        "index": self.block,
                        "delta": {"type": "text_delta", "text": delta["content"]},
                    },
                )
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if index not in self.tool_blocks:
                    out += self._open(
                        "tool_use",
                        {
                            "type": "tool_use",
                            "id": call.get("id"),
                            "name": function.get("name"),
                            "input": {},
                        },
                    )
                    self.tool_blocks[index] = self.block
                if function.get("arguments"):
                    out += self._event(
                        "content_block_delta",
                        {
                            "index": self.tool_blocks[index],
                            "delta": {
                                "type": "input_json_delta",
                                "partial_json": function["arguments"],
                            },
                        },
                    )
            if choice.get("finish_reason"):
                self.stop_reason = FINISH_TO_STOP.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> bytes:
        out = b"" if self.started else self._start({})
        out += self._close()
        usage = usage_to_anthropic(self.usage)
        out += self._event(
            "message_delta",
            {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None}, "usage": usage},
        )
        return out + self._event("message_stop", {})

    def error(self, status: int, message: str) -> bytes:
        return b"event: error\ndata: " + error_body(status, message) + b"\n\n"
