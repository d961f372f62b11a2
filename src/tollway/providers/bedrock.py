"""AWS Bedrock's Converse and ConverseStream APIs <-> canonical mapping.

Requests are signed with SigV4 (providers/sigv4.py) or carry a Bedrock API key as a Bearer
token; ConverseStream answers in AWS's binary event stream (providers/aws_eventstream.py).

Rules:
- system/developer messages that open the conversation -> `system` text blocks; a later one
  (Converse takes no system message inside `messages` for most models, Claude's included) -> a
  marked note (`<system-message>`) in a user turn at its place; tool calls -> `toolUse`; tool
  results -> `toolResult` (a JSON-object result as `{"json": ...}`, else `{"text": ...}`),
  consecutive results in one user turn, before anything else in it; thinking blocks ->
  `reasoningContent` (Claude models); `cache_control` on a part -> a `cachePoint` block after
  it; images as base64 data URLs -> `image` blocks (Converse takes bytes, not URLs: an http(s)
  image URL is refused).
- mapped: max_tokens / max_completion_tokens, temperature, top_p, stop -> `inferenceConfig`;
  tools -> `toolConfig`; tool_choice auto / required (`any`) / a named function (`tool`);
  response_format json_object / json_schema -> a forced tool whose input is the answer (text
  the model writes beside it is dropped, plain and streamed); reasoning_effort ->
  Anthropic-style `thinking` in `additionalModelRequestFields` (Claude models); top_k ->
  `additionalModelRequestFields.top_k` (Claude models).
- dropped: seed, user, store, metadata, service_tier, parallel_tool_calls, stream_options.
- refused: n > 1, logprobs, top_logprobs, logit_bias, frequency_penalty, presence_penalty,
  tool_choice "none" (Converse cannot switch tools off), and the unknown.
- stopReason end_turn / stop_sequence -> stop, max_tokens -> length, tool_use -> tool_calls,
  guardrail_intervened / content_filtered -> content_filter.
- usage: inputTokens + cacheReadInputTokens + cacheWriteInputTokens -> prompt_tokens, with the
  cache reads as cached_tokens and writes as cache_creation_input_tokens. Converse reports no
  reasoning-token count: reasoning_tokens is left out rather than guessed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

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
    tool_result,
)
from tollway.llm.usage import usage_with_cache
from tollway.providers.aws_eventstream import EventStreamDecoder, EventStreamError
from tollway.providers.base import (
    COMMON_DROPPED,
    COMMON_MAPPED,
    JSON_TOOL,
    SYSTEM_ROLES,
    THINKING_BUDGETS,
    ParameterRules,
    ProviderStreamError,
    UpstreamCall,
    content_text,
    error_message,
    error_object,
    json_mode,
    leading_system,
    reads_upstream,
    system_note,
)

RULES = ParameterRules(
    "Bedrock",
    COMMON_MAPPED,
    COMMON_DROPPED | {"parallel_tool_calls", "seed", "user"},
    budgets=THINKING_BUDGETS,
)
STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
# AWS error names -> (status for the client, code)
_EXCEPTIONS = {
    "throttlingException": (429, "rate_limit_exceeded"),
    "validationException": (400, "invalid_request"),
    "accessDeniedException": (403, "permission_denied"),
    "resourceNotFoundException": (404, "model_not_found"),
    "serviceUnavailableException": (503, "overloaded"),
    "internalServerException": (500, "upstream_error"),
    "modelStreamErrorException": (502, "upstream_stream_interrupted"),
    "modelTimeoutException": (504, "upstream_timeout"),
}
_STATUS_CODES = {
    400: "invalid_request",
    403: "permission_denied",
    404: "model_not_found",
    429: "rate_limit_exceeded",
    503: "overloaded",
    424: "upstream_error",
}


class BedrockAdapter:
    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        RULES.check(request)
        system, messages = messages_to_bedrock(request["messages"])
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        inference: dict[str, Any] = {}
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        if limit:
            inference["maxTokens"] = limit
        if request.get("temperature") is not None:
            inference["temperature"] = request["temperature"]
        if request.get("top_p") is not None:
            inference["topP"] = request["top_p"]
        stop = request.get("stop")
        if stop:
            inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if inference:
            body["inferenceConfig"] = inference
        extra: dict[str, Any] = {}
        if request.get("top_k") is not None:
            extra["top_k"] = request["top_k"]
        effort = request.get("reasoning_effort")
        if effort is not None:
            extra["thinking"] = {"type": "enabled", "budget_tokens": RULES.budget(effort)}
        if extra:
            body["additionalModelRequestFields"] = extra
        _tools(request, body)
        action = "converse-stream" if stream else "converse"
        accept = b"application/vnd.amazon.eventstream" if stream else b"application/json"
        return UpstreamCall(
            f"/model/{quote(model, safe='')}/{action}", orjson.dumps(body), ((b"accept", accept),)
        )

    @reads_upstream
    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        reply = orjson.loads(body)
        content = ((reply.get("output") or {}).get("message") or {}).get("content") or []
        text: list[str] = []
        answer: list[str] = []  # the JSON tool's input: JSON mode's answer
        reasoning: list[str] = []
        thinking: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        finish = STOP.get(reply.get("stopReason") or "end_turn", "stop")
        for block in content:
            if "text" in block:
                text.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                if use.get("name") == JSON_TOOL:
                    answer.append(orjson.dumps(use.get("input") or {}).decode())
                    finish = "stop"
                    continue
                calls.append(tool_call(use.get("toolUseId"), use.get("name"), use.get("input")))
            elif "reasoningContent" in block:
                part = block["reasoningContent"].get("reasoningText") or {}
                reasoning.append(part.get("text", ""))
                thinking.append(
                    {
                        "type": "thinking",
                        "thinking": part.get("text", ""),
                        "signature": part.get("signature", ""),
                    }
                )
        # Text written beside the JSON tool's call is not part of the answer.
        message = assistant_message(
            "".join(answer if answer else text), calls, "".join(reasoning), thinking
        )
        return completion(
            f"bedrock-{time.time_ns()}",
            model,
            [choice(message, finish)],
            usage_from_bedrock(reply.get("usage") or {}),
        )

    def count_tokens_call(self, request: dict[str, Any], model: str) -> UpstreamCall:
        """Bedrock's CountTokens API for a canonical request (as Converse would send it)."""
        system, messages = messages_to_bedrock(request["messages"])
        converse: dict[str, Any] = {"messages": messages}
        if system:
            converse["system"] = system
        return UpstreamCall(
            f"/model/{quote(model, safe='')}/count-tokens",
            orjson.dumps({"input": {"converse": converse}}),
        )

    @reads_upstream
    def count_tokens_response(self, body: bytes) -> int:
        return int(orjson.loads(body).get("inputTokens") or 0)

    def chat_stream(self, model: str, request: Mapping[str, Any] | None = None) -> BedrockStream:
        return BedrockStream(model, request is not None and json_mode(request))

    def error(self, status: int, body: bytes) -> GatewayError:
        message = error_message(error_object(body, nested=False), body, status)
        code = _STATUS_CODES.get(status, "upstream_error")
        if status == 400 and ("too long" in message or "too many input tokens" in message):
            code = "context_length_exceeded"
        return GatewayError(
            502 if status == 424 else status,
            message,
            code=code,
            type="rate_limit_error" if status == 429 else None,
        )


def usage_from_bedrock(usage: dict[str, Any]) -> dict[str, Any]:
    return usage_with_cache(
        usage.get("inputTokens") or 0,
        usage.get("outputTokens") or 0,
        usage.get("cacheReadInputTokens") or 0,
        usage.get("cacheWriteInputTokens") or 0,
    )


# -- request pieces -----------------------------------------------------------------------


def messages_to_bedrock(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    leading = leading_system(messages)
    for i, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{i}]"
        if role in SYSTEM_ROLES:
            blocks = _blocks(message.get("content"), where, text_only=True)
            if i < leading:
                system.extend(blocks)
            else:
                note = [{"text": system_note(content_text(message.get("content")))}]
                if blocks and "cachePoint" in blocks[-1]:
                    note.append(blocks[-1])
                add_turn(out, "user", note, "content")
            continue
        if role == "user":
            turn, blocks = "user", _blocks(message.get("content"), where)
        elif role == "assistant":
            turn = "assistant"
            blocks = [
                {
                    "reasoningContent": {
                        "reasoningText": {
                            "text": b.get("thinking", ""),
                            "signature": b.get("signature", ""),
                        }
                    }
                }
                for b in message.get("thinking_blocks") or []
                if b.get("type") == "thinking"
            ]
            blocks.extend(_blocks(message.get("content"), where, text_only=True))
            for call in message.get("tool_calls") or []:
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": call.get("id"),
                            "name": (call.get("function") or {}).get("name"),
                            "input": call_arguments(call, where),
                        }
                    }
                )
        elif role == "tool":
            text, parsed = tool_result(message)
            result = [{"json": parsed}] if parsed is not None else [{"text": text}]
            turn, blocks = (
                "user",
                [
                    {
                        "toolResult": {
                            "toolUseId": message.get("tool_call_id"),
                            "content": result,
                            "status": "success",
                        }
                    }
                ],
            )
        else:
            raise GatewayError(
                400, f"{where}: role {role!r} is not supported.", param=f"{where}.role"
            )
        add_turn(out, turn, blocks, "content")
    for entry in out:
        # Tool results open the turn that carries them (Claude on Bedrock requires it).
        if entry["role"] == "user":
            entry["content"].sort(key=lambda block: "toolResult" not in block)
    return system, out


def _blocks(content: Any, where: str, text_only: bool = False) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"text": part.get("text", "")})
        elif kind == "image_url" and not text_only:
            url = (part.get("image_url") or {}).get("url") or ""
            header, _, data = url.partition(",")
            media = header[5:].split(";")[0] if url.startswith("data:") else ""
            if media not in _FORMATS or ";base64" not in header:
                raise GatewayError(
                    400,
                    f"{where}: Bedrock takes images as base64 data URLs (png, jpeg, gif or webp).",
                    param=where,
                    code="unsupported_parameter",
                )
            blocks.append({"image": {"format": _FORMATS[media], "source": {"bytes": data}}})
        else:
            raise GatewayError(
                400,
                f"{where}: content part type {kind!r} is not supported for Bedrock models.",
                param=where,
                code="unsupported_parameter",
            )
        if "cache_control" in part:
            blocks.append({"cachePoint": {"type": "default"}})
    return blocks


def _tools(request: dict[str, Any], body: dict[str, Any]) -> None:
    tools = request.get("tools") or []
    fmt = request.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        if tools:
            raise RULES.refuse("response_format", "cannot be combined with tools")
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        body["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": JSON_TOOL,
                        "description": "Respond with the JSON answer.",
                        "inputSchema": {"json": schema},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": JSON_TOOL}},
        }
        return
    if fmt and fmt.get("type") != "text":
        raise RULES.refuse("response_format", f"type {fmt.get('type')!r} is not supported")
    choice = request.get("tool_choice")
    if choice == "none":
        raise RULES.refuse(
            "tool_choice", "cannot be 'none' (Converse has no way to switch tools off)"
        )
    if not tools:
        return
    specs = []
    for function in RULES.function_tools(request):
        spec: dict[str, Any] = {
            "name": function.get("name"),
            "inputSchema": {
                "json": function.get("parameters") or {"type": "object", "properties": {}}
            },
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    elif choice not in (None, "auto"):
        raise RULES.refuse("tool_choice", f"value {choice!r} is not supported")
    body["toolConfig"] = config


# -- stream -------------------------------------------------------------------------------


class BedrockStream(CanonicalStream):
    """ConverseStream's binary events -> canonical chunks. In JSON mode (`json_tool`) the
    forced tool's input is the answer and text beside it is dropped."""

    def __init__(self, model: str, json_tool: bool = False) -> None:
        super().__init__(model)
        self.json_tool = json_tool
        self.id = f"bedrock-{time.time_ns()}"
        self.decoder = EventStreamDecoder()
        self.tool_index: dict[int, int] = {}
        self.json_blocks: set[int] = set()
        self.thinking: dict[int, str] = {}
        self.finish_reason: str | None = None

    @reads_upstream
    def feed(self, data: bytes) -> list[dict[str, Any]]:
        try:
            messages = self.decoder.feed(data)
        except EventStreamError as exc:
            raise ProviderStreamError(
                GatewayError(
                    502,
                    f"Bedrock sent a malformed event stream: {exc}.",
                    code="upstream_protocol",
                    type="upstream_error",
                )
            ) from None
        out: list[dict[str, Any]] = []
        for message in messages:
            payload = orjson.loads(message.payload or b"{}")
            if message.headers.get(":message-type") == "exception":
                name = message.headers.get(":exception-type", "")
                status, code = _EXCEPTIONS.get(name, (502, "upstream_error"))
                raise ProviderStreamError(
                    GatewayError(
                        status,
                        payload.get("message") or name,
                        code=code,
                        type="rate_limit_error" if status == 429 else "upstream_error",
                    ),
                    out,
                )
            out.extend(self._event(message.headers.get(":event-type", ""), payload))
        return out

    def _event(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        index = payload.get("contentBlockIndex", 0)
        if kind == "messageStart":
            return [self.chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if not use:
                return []
            if use.get("name") == JSON_TOOL:
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
                                "id": use.get("toolUseId"),
                                "type": "function",
                                "function": {"name": use.get("name"), "arguments": ""},
                            }
                        ]
                    }
                )
            ]
        if kind == "contentBlockDelta":
            delta = payload.get("delta") or {}
            if "text" in delta:
                return [] if self.json_tool else [self.chunk({"content": delta["text"]})]
            if "toolUse" in delta:
                partial = delta["toolUse"].get("input", "")
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
            reasoning = delta.get("reasoningContent") or {}
            if reasoning.get("text"):
                self.thinking[index] = self.thinking.get(index, "") + reasoning["text"]
                return [self.chunk({"reasoning_content": reasoning["text"]})]
            if reasoning.get("signature"):
                return [
                    self.chunk(
                        {
                            "thinking_blocks": [
                                {
                                    "type": "thinking",
                                    "thinking": self.thinking.get(index, ""),
                                    "signature": reasoning["signature"],
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "messageStop":
            reason = payload.get("stopReason") or "end_turn"
            self.finish_reason = "stop" if self.json_blocks else STOP.get(reason, "stop")
        elif kind == "metadata":
            self._usage = usage_from_bedrock(payload.get("usage") or {})
        return []

    @reads_upstream
    def finish(self) -> list[dict[str, Any]]:
        if self.finish_reason is None or self.decoder.pending:
            raise ProviderStreamError(
                GatewayError(
                    502,
                    "Bedrock ended the stream before messageStop.",
                    code="upstream_stream_truncated",
                    type="upstream_error",
                )
            )
        return self.closing(self.finish_reason, self._usage)
