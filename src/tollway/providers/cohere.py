"""Cohere's v2 API (`/v2/chat`, `/v2/embed`) <-> canonical mapping.

Chat rules:
- messages map one to one (Cohere v2 takes system, user, assistant with `tool_calls`, and tool
  messages with `tool_call_id`), a system message in the middle of the conversation staying
  in its place; image parts pass as `image_url`; the assistant's `tool_plan` comes back as
  `reasoning_content`.
- mapped: max_tokens / max_completion_tokens, temperature, top_p (`p`), top_k (`k`), stop
  (`stop_sequences`), seed, frequency_penalty, presence_penalty, tools, tool_choice
  (required -> REQUIRED, none -> NONE; auto is Cohere's default), response_format (json_object
  with its schema), reasoning_effort (`thinking` with a token budget: low 1024, medium 4096,
  high 16384).
- dropped: user, store, metadata, service_tier, parallel_tool_calls, stream_options.
- refused: n > 1, logprobs, top_logprobs, logit_bias, a tool_choice naming one function, and
  the unknown.
- finish: COMPLETE and STOP_SEQUENCE -> stop, MAX_TOKENS -> length, TOOL_CALL -> tool_calls,
  ERROR and TIMEOUT -> an error. Usage comes from `usage.tokens` (what was processed), cache
  hits from `usage.cached_tokens` (-> cached_tokens).

Embed rules: `input` -> `texts`, `input_type` "search_document" (Cohere requires one;
OpenAI's API has none), `dimensions` -> `output_dimension`; float vectors are asked for and
`encoding_format: base64` is produced here from them, byte for byte as OpenAI encodes it
(little-endian float32).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm.canonical import CanonicalStream, assistant_message, choice, completion
from tollway.llm.sse import SseParser
from tollway.providers.base import (
    COMMON_DROPPED,
    COMMON_MAPPED,
    THINKING_BUDGETS,
    ParameterRules,
    ProviderStreamError,
    UpstreamCall,
    error_message,
    error_object,
    reads_upstream,
)

RULES = ParameterRules(
    "Cohere",
    COMMON_MAPPED | {"frequency_penalty", "presence_penalty", "seed"},
    COMMON_DROPPED | {"parallel_tool_calls", "user"},
    budgets=THINKING_BUDGETS,
)
FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
_STATUS_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    404: "model_not_found",
    422: "invalid_request",
    429: "rate_limit_exceeded",
    500: "upstream_error",
    503: "overloaded",
}


class CohereAdapter:
    # -- chat ------------------------------------------------------------------------------

    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        RULES.check(request)
        body: dict[str, Any] = {
            "model": model,
            "messages": [_message(m) for m in request["messages"]],
        }
        for ours, theirs in (
            ("temperature", "temperature"),
            ("top_p", "p"),
            ("top_k", "k"),
            ("seed", "seed"),
            ("frequency_penalty", "frequency_penalty"),
            ("presence_penalty", "presence_penalty"),
        ):
            if request.get(ours) is not None:
                body[theirs] = request[ours]
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        if limit:
            body["max_tokens"] = limit
        stop = request.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if request.get("tools"):
            body["tools"] = request["tools"]
        choice = request.get("tool_choice")
        if choice in ("required", "none"):
            body["tool_choice"] = choice.upper()
        elif choice not in (None, "auto"):
            raise RULES.refuse("tool_choice", "can only be auto, required or none")
        fmt = request.get("response_format") or {}
        if fmt.get("type") in ("json_object", "json_schema"):
            schema = (fmt.get("json_schema") or {}).get("schema")
            body["response_format"] = {
                "type": "json_object",
                **({"json_schema": schema} if schema else {}),
            }
        elif fmt and fmt.get("type") != "text":
            raise RULES.refuse("response_format", f"type {fmt.get('type')!r} is not supported")
        effort = request.get("reasoning_effort")
        if effort is not None:
            body["thinking"] = {"type": "enabled", "token_budget": RULES.budget(effort)}
        if stream:
            body["stream"] = True
        return UpstreamCall("/chat", orjson.dumps(body))

    @reads_upstream
    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        reply = orjson.loads(body)
        reason = reply.get("finish_reason")
        if reason in ("ERROR", "TIMEOUT"):
            raise GatewayError(
                502,
                f"Cohere ended the reply with {reason}.",
                code="upstream_error",
                type="upstream_error",
            )
        message = reply.get("message") or {}
        text = "".join(
            part.get("text", "")
            for part in message.get("content") or []
            if part.get("type") == "text"
        )
        calls = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {
                    "name": (c.get("function") or {}).get("name"),
                    "arguments": (c.get("function") or {}).get("arguments") or "{}",
                },
            }
            for c in message.get("tool_calls") or []
        ]
        out = assistant_message(text, calls, message.get("tool_plan") or "")
        return completion(
            reply.get("id", ""),
            model,
            [choice(out, FINISH.get(reason or "COMPLETE", "stop"))],
            usage_from_cohere(reply.get("usage") or {}),
        )

    def chat_stream(self, model: str, request: Mapping[str, Any] | None = None) -> CohereStream:
        return CohereStream(model)

    def error(self, status: int, body: bytes) -> GatewayError:
        return error_from_cohere(status, body)

    # -- embeddings --------------------------------------------------------------------------

    def embeddings_call(self, request: dict[str, Any], model: str) -> UpstreamCall:
        texts = request["input"]
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(t, str) for t in texts):
            raise RULES.refuse("input", "must be text (token arrays are not accepted)")
        body: dict[str, Any] = {
            "model": model,
            "texts": texts,
            "input_type": "search_document",
            "embedding_types": ["float"],
        }
        if request.get("dimensions"):
            body["output_dimension"] = request["dimensions"]
        return UpstreamCall("/embed", orjson.dumps(body))

    @reads_upstream
    def embeddings_response(
        self, body: bytes, model: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        reply = orjson.loads(body)
        vectors = (reply.get("embeddings") or {}).get("float") or []
        as_base64 = request.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                if as_base64
                else v,
            }
            for i, v in enumerate(vectors)
        ]
        tokens = ((reply.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant", "tool"):
        raise GatewayError(
            400, f"Message role {role!r} is not supported for Cohere models.", param="messages"
        )
    out: dict[str, Any] = {"role": role}
    content = message.get("content")
    if isinstance(content, list):
        out["content"] = [
            {k: v for k, v in part.items() if k != "cache_control"} for part in content
        ]
    elif content is not None:
        out["content"] = content
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": c.get("function")}
            for c in message["tool_calls"]
        ]
        if message.get("reasoning_content"):
            out["tool_plan"] = message["reasoning_content"]
    if role == "tool":
        out["tool_call_id"] = message.get("tool_call_id")
    return out


def usage_from_cohere(usage: dict[str, Any]) -> dict[str, Any]:
    tokens = usage.get("tokens") or usage.get("billed_units") or {}
    prompt = int(tokens.get("input_tokens") or 0)
    completion = int(tokens.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.get("cached_tokens") is not None:
        out["prompt_tokens_details"] = {"cached_tokens": int(usage["cached_tokens"])}
    return out


def error_from_cohere(status: int, body: bytes) -> GatewayError:
    message = error_message(error_object(body, nested=False), body, status)
    code = _STATUS_CODES.get(status, "upstream_error")
    if "too many tokens" in message.lower():
        code = "context_length_exceeded"
    return GatewayError(
        status if status != 422 else 400,
        message,
        code=code,
        type="rate_limit_error" if status == 429 else None,
    )


class CohereStream(CanonicalStream):
    """Cohere's typed events (message-start, content-delta, tool-call-start/delta,
    tool-plan-delta, message-end) -> canonical chunks."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.parser = SseParser()
        self.finish_reason: str | None = None

    @reads_upstream
    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self.parser.feed(data):
            if not event.data:
                continue
            payload = orjson.loads(event.data)
            kind = payload.get("type") or event.event
            delta = (payload.get("delta") or {}).get("message") or {}
            if kind == "message-start":
                self.id = payload.get("id") or self.id
                out.append(self.chunk({"role": "assistant", "content": ""}))
            elif kind == "content-delta":
                text = (delta.get("content") or {}).get("text")
                if text:
                    out.append(self.chunk({"content": text}))
            elif kind == "tool-plan-delta":
                if delta.get("tool_plan"):
                    out.append(self.chunk({"reasoning_content": delta["tool_plan"]}))
            elif kind == "tool-call-start":
                call = delta.get("tool_calls") or {}
                function = call.get("function") or {}
                out.append(
                    self.chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": payload.get("index", 0),
                                    "id": call.get("id"),
                                    "type": "function",
                                    "function": {
                                        "name": function.get("name"),
                                        "arguments": function.get("arguments") or "",
                                    },
                                }
                            ]
                        }
                    )
                )
            elif kind == "tool-call-delta":
                arguments = ((delta.get("tool_calls") or {}).get("function") or {}).get("arguments")
                if arguments:
                    out.append(
                        self.chunk(
                            {
                                "tool_calls": [
                                    {
                                        "index": payload.get("index", 0),
                                        "function": {"arguments": arguments},
                                    }
                                ]
                            }
                        )
                    )
            elif kind == "message-end":
                end = payload.get("delta") or {}
                reason = end.get("finish_reason") or "COMPLETE"
                if reason in ("ERROR", "TIMEOUT"):
                    raise ProviderStreamError(
                        GatewayError(
                            502,
                            f"Cohere ended the stream with {reason}.",
                            code="upstream_stream_interrupted",
                            type="upstream_error",
                        ),
                        out,
                    )
                self.finish_reason = FINISH.get(reason, "stop")
                self._usage = usage_from_cohere(end.get("usage") or {})
        return out

    @reads_upstream
    def finish(self) -> list[dict[str, Any]]:
        if self.finish_reason is None:
            raise ProviderStreamError(
                GatewayError(
                    502,
                    "Cohere ended the stream without message-end.",
                    code="upstream_stream_truncated",
                    type="upstream_error",
                )
            )
        return self.closing(self.finish_reason, self._usage)
