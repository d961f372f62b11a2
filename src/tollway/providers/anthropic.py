"""Anthropic Messages API <-> canonical (OpenAI Chat Completions) mapping: the adapter, and
Anthropic's answers, streams, usage and errors read back (the request mapping and its
parameter rules are in anthropic_request.py).

- content: text -> `content`; tool_use -> tool calls; thinking (with its signature) and
  redacted_thinking -> `reasoning_content` and `thinking_blocks`; the forced JSON tool's input
  (JSON mode on models without structured outputs) is the answer, and text the model writes
  beside it is dropped, plain and streamed.
- usage: input + cache reads + cache writes -> prompt_tokens (reads as cached_tokens, writes as
  cache_creation_input_tokens); `output_tokens_details.thinking_tokens` -> reasoning_tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm.canonical import (
    CanonicalStream,
    assistant_message,
    choice,
    completion,
    tool_call,
)
from tollway.llm.sse import SseParser
from tollway.llm.usage import from_anthropic
from tollway.providers.anthropic_request import (
    anthropic_body,
    json_by_tool,
    messages_to_anthropic,
)
from tollway.providers.base import (
    JSON_TOOL,
    ProviderStreamError,
    UpstreamCall,
    error_message,
    error_object,
    reads_upstream,
)

__all__ = ["API_VERSION", "AnthropicAdapter", "AnthropicStream", "messages_to_anthropic"]

API_VERSION = b"2023-06-01"

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
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
        return UpstreamCall("/messages", orjson.dumps(anthropic_body(request, model, stream)))

    # -- response --------------------------------------------------------------------------

    @reads_upstream
    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        message = orjson.loads(body)
        text: list[str] = []
        answer: list[str] = []  # the JSON tool's input, when JSON mode rides on it
        reasoning: list[str] = []
        thinking_blocks: list[dict[str, Any]] = []
        tool_calls: list[dict[str, Any]] = []
        finish = STOP_REASONS.get(message.get("stop_reason") or "end_turn", "stop")
        for block in message.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "tool_use" and block.get("name") == JSON_TOOL:
                answer.append(orjson.dumps(block.get("input", {})).decode())
                finish = "stop"
            elif kind == "tool_use":
                tool_calls.append(tool_call(block["id"], block["name"], block.get("input")))
            elif kind == "thinking":
                reasoning.append(block.get("thinking", ""))
                thinking_blocks.append(block)
            elif kind == "redacted_thinking":
                thinking_blocks.append(block)
        # Text written beside the JSON tool's call is not part of the answer.
        content = "".join(answer if answer else text)
        out = assistant_message(content, tool_calls, "".join(reasoning), thinking_blocks)
        return completion(
            message.get("id", ""),
            message.get("model", model),
            [choice(out, finish)],
            from_anthropic(message.get("usage") or {}),
        )

    def chat_stream(self, model: str, request: Mapping[str, Any] | None = None) -> AnthropicStream:
        return AnthropicStream(model, request is not None and json_by_tool(request, model))

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


# -- stream -------------------------------------------------------------------------------


class AnthropicStream(CanonicalStream):
    """Anthropic's event sequence -> canonical chat.completion.chunk dicts. When JSON mode
    rides on the forced tool (`json_tool`), the tool's input is the answer and text the model
    writes beside it is dropped."""

    def __init__(self, model: str, json_tool: bool = False) -> None:
        super().__init__(model)
        self.json_tool = json_tool
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
            if kind == "error":
                raise ProviderStreamError(error_from_anthropic(500, orjson.dumps(payload)), out)
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
        if kind == "text" and block.get("text") and not self.json_tool:
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
            return [] if self.json_tool else [self.chunk({"content": delta.get("text", "")})]
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
