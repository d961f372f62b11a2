"""Google Gemini (generateContent / streamGenerateContent) <-> canonical mapping.

The same adapter serves the Gemini API (`x-goog-api-key`) and Vertex AI (Bearer token, base URL
ending in `/publishers/google`); both take `/models/{model}:generateContent`.

Rules:
- system/developer messages that open the conversation -> `systemInstruction`; a later one
  (Gemini has no system role inside `contents`) -> a marked note (`<system-message>`) in a
  user turn at its place; assistant tool calls -> `functionCall`
  parts; tool results -> `functionResponse` parts (consecutive results in one turn, as Gemini
  requires; the function's name is taken from the call it answers; a result that is a JSON
  object is sent as the response, anything else as `{"result": ...}`).
- Gemini's function calls carry no ids: ids are made from the response id and the call's
  position, `call_<hash>`, and stay stable across turns because they travel in the history.
- Thought signatures on function calls come back as
  `tool_calls[i].extra_content.google.thought_signature` (the field Google's own OpenAI
  endpoint uses) and also inside the call id (`call_<hash>__ts_<signature>`, URL-safe base64),
  because every client sends ids back while not every client keeps unknown fields (Anthropic's
  format has no place for them at all). On the next turn the signature is put back on the
  `functionCall` part from either. No state is kept between requests.
- images: data URLs -> `inlineData`; http(s) URLs -> `fileData` with the MIME type guessed from
  the file name.
- mapped: temperature, top_p, top_k, max_tokens / max_completion_tokens (`maxOutputTokens`),
  stop (`stopSequences`), n (`candidateCount`), seed, presence_penalty, frequency_penalty,
  response_format json_object / json_schema (`responseMimeType`, `responseJsonSchema`), tools,
  tool_choice (auto AUTO, none NONE, required ANY, a named function ANY restricted to it),
  reasoning_effort (`thinkingConfig` budget low 1024 / medium 8192 / high 24576, thoughts
  included, returned as `reasoning_content`).
- dropped: parallel_tool_calls, user, store, metadata, service_tier, stream_options.
- refused: logprobs, top_logprobs, logit_bias, audio, modalities, prediction, and the unknown.
- finish: STOP -> stop (tool_calls when the turn calls functions), MAX_TOKENS -> length, SAFETY,
  RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY -> content_filter. A prompt
  blocked outright (`promptFeedback.blockReason`) is a 400 `content_policy_violation`.
- usage: promptTokenCount -> prompt_tokens, cachedContentTokenCount -> cached_tokens,
  candidatesTokenCount + thoughtsTokenCount -> completion_tokens (thoughts are billed as output)
  with thoughtsTokenCount as reasoning_tokens.
"""

from __future__ import annotations

import hashlib
import mimetypes
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
    tool_result,
)
from tollway.llm.sse import SseParser
from tollway.providers.base import (
    COMMON_DROPPED,
    COMMON_MAPPED,
    SYSTEM_ROLES,
    ParameterRules,
    ProviderStreamError,
    UpstreamCall,
    content_text,
    error_message,
    error_object,
    leading_system,
    reads_upstream,
    system_note,
)

_BUDGET = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
RULES = ParameterRules(
    "Gemini",
    COMMON_MAPPED | {"frequency_penalty", "presence_penalty", "seed"},
    COMMON_DROPPED | {"parallel_tool_calls", "user"},
    single_choice=False,
    budgets=_BUDGET,
)
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error", "invalid_request"),
    "FAILED_PRECONDITION": (400, "invalid_request_error", "invalid_request"),
    "PERMISSION_DENIED": (403, "permission_error", "permission_denied"),
    "UNAUTHENTICATED": (401, "invalid_request_error", "invalid_api_key"),
    "NOT_FOUND": (404, "invalid_request_error", "model_not_found"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error", "rate_limit_exceeded"),
    "INTERNAL": (500, "server_error", "upstream_error"),
    "UNAVAILABLE": (503, "server_error", "overloaded"),
    "DEADLINE_EXCEEDED": (504, "server_error", "upstream_timeout"),
}


_SIGNED = "__ts_"


def call_id(response_id: str, index: int, name: str) -> str:
    digest = hashlib.sha256(f"{response_id}/{index}/{name}".encode()).hexdigest()
    return "call_" + digest[:24]


def signed_id(base: str, signature: str | None) -> str:
    """An id that carries the thought signature, in characters every API accepts in ids."""
    if not signature:
        return base
    return base + _SIGNED + signature.replace("+", "-").replace("/", "_").rstrip("=")


def signature_in_id(value: str) -> str | None:
    _, found, tail = value.partition(_SIGNED)
    if not found or not tail:
        return None
    tail = tail.replace("-", "+").replace("_", "/")
    return tail + "=" * (-len(tail) % 4)


class GeminiAdapter:
    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        RULES.check(request)
        system, contents = messages_to_gemini(request["messages"])
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        config = _generation_config(request)
        if config:
            body["generationConfig"] = config
        _tools(request, body)
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamCall(f"/models/{quote(model, safe='')}:{action}", orjson.dumps(body))

    @reads_upstream
    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        response = orjson.loads(body)
        _blocked(response)
        response_id = response.get("responseId") or ""
        choices = []
        for i, candidate in enumerate(response.get("candidates") or []):
            text, reasoning, calls = _parts(candidate, response_id)
            choices.append(
                choice(
                    assistant_message(text, calls, reasoning),
                    _finish(candidate.get("finishReason"), calls),
                    candidate.get("index", i),
                )
            )
        return completion(
            response_id,
            response.get("modelVersion") or model,
            choices,
            usage_from_gemini(response.get("usageMetadata") or {}),
        )

    def count_tokens_call(self, request: dict[str, Any], model: str) -> UpstreamCall:
        """Gemini's own exact count (`:countTokens`) for a canonical request."""
        system, contents = messages_to_gemini(request["messages"])
        inner: dict[str, Any] = {"model": f"models/{model}", "contents": contents}
        if system:
            inner["systemInstruction"] = {"parts": system}
        _tools(request, inner)
        return UpstreamCall(
            f"/models/{quote(model, safe='')}:countTokens",
            orjson.dumps({"generateContentRequest": inner}),
        )

    @reads_upstream
    def count_tokens_response(self, body: bytes) -> int:
        return int(orjson.loads(body).get("totalTokens") or 0)

    def chat_stream(self, model: str, request: Mapping[str, Any] | None = None) -> GeminiStream:
        return GeminiStream(model)

    def images_call(self, request: dict[str, Any], model: str) -> UpstreamCall:
        """OpenAI's image generation as a generateContent asking for images: one candidate
        an image, `n` of them."""
        n = request.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 8:
            raise GatewayError(400, "'n' must be from 1 to 8 here.", param="n")
        if request.get("stream"):
            raise GatewayError(
                400,
                "Streamed image generation is served by providers with OpenAI's images API only.",
                param="stream",
                code="unsupported_parameter",
            )
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        if n > 1:
            config["candidateCount"] = n
        body = {
            "contents": [{"role": "user", "parts": [{"text": request.get("prompt") or ""}]}],
            "generationConfig": config,
        }
        return UpstreamCall(f"/models/{quote(model, safe='')}:generateContent", orjson.dumps(body))

    @reads_upstream
    def images_response(self, body: bytes, model: str) -> dict[str, Any]:
        """The images of the answer, in OpenAI's shape (always `b64_json`), with canonical
        usage (the tokens, and the images made)."""
        response = orjson.loads(body)
        _blocked(response)
        data = []
        for candidate in response.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                inline = part.get("inlineData")
                if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith(
                    "image/"
                ):
                    data.append({"b64_json": inline.get("data") or ""})
        if not data:
            raise GatewayError(
                502,
                f"The model `{model}` answered without an image.",
                code="upstream_no_image",
                type="upstream_error",
            )
        usage = usage_from_gemini(response.get("usageMetadata") or {})
        usage["images"] = len(data)
        return {"created": int(time.time()), "data": data, "usage": usage}

    def error(self, status: int, body: bytes) -> GatewayError:
        return error_from_gemini(status, body)


def usage_from_gemini(meta: dict[str, Any]) -> dict[str, Any]:
    prompt = meta.get("promptTokenCount") or 0
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": meta.get("cachedContentTokenCount") or 0},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def error_from_gemini(status: int, body: bytes) -> GatewayError:
    error = error_object(body)
    message = error_message(error, body, status)
    mapped = _STATUS.get(error.get("status", ""))
    code_status, kind, code = mapped or (status, "upstream_error", "upstream_error")
    if "exceeds the maximum number of tokens" in message:
        code = "context_length_exceeded"
    return GatewayError(code_status, message, type=kind, code=code)


def _blocked(response: dict[str, Any]) -> None:
    reason = (response.get("promptFeedback") or {}).get("blockReason")
    if reason and not response.get("candidates"):
        raise GatewayError(
            400, f"Gemini blocked the prompt ({reason}).", code="content_policy_violation"
        )


def _finish(reason: str | None, calls: list[Any]) -> str | None:
    if reason is None:
        return None
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if calls else "stop"


def _parts(
    candidate: dict[str, Any], response_id: str, first_call: int = 0
) -> tuple[str, str, list[dict[str, Any]]]:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "functionCall" in part:
            function = part["functionCall"]
            index = first_call + len(calls)
            signature = part.get("thoughtSignature")
            call: dict[str, Any] = {
                "id": signed_id(
                    function.get("id") or call_id(response_id, index, function.get("name", "")),
                    signature,
                ),
                "type": "function",
                "function": {
                    "name": function.get("name"),
                    "arguments": orjson.dumps(function.get("args") or {}).decode(),
                },
            }
            if signature:
                call["extra_content"] = {"google": {"thought_signature": signature}}
            calls.append(call)
        elif part.get("thought"):
            reasoning.append(part.get("text", ""))
        elif "text" in part:
            text.append(part["text"])
    return "".join(text), "".join(reasoning), calls


# -- request pieces -----------------------------------------------------------------------


def messages_to_gemini(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name
    leading = leading_system(messages)
    for i, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{i}]"
        if role in SYSTEM_ROLES:
            parts = _content_parts(message.get("content"), where, text_only=True)
            if i < leading:
                system.extend(parts)
            else:
                note = system_note(content_text(message.get("content")))
                add_turn(contents, "user", [{"text": note}], "parts")
            continue
        if role == "user":
            turn_role, parts = "user", _content_parts(message.get("content"), where)
        elif role == "assistant":
            turn_role = "model"
            parts = _content_parts(message.get("content"), where, text_only=True)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "")
                part: dict[str, Any] = {
                    "functionCall": {
                        "name": function.get("name"),
                        "args": call_arguments(call, where),
                    }
                }
                signature = ((call.get("extra_content") or {}).get("google") or {}).get(
                    "thought_signature"
                ) or signature_in_id(call.get("id") or "")
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""))
            if name is None:
                raise GatewayError(
                    400,
                    f"{where}: tool_call_id does not answer a tool call of "
                    "an earlier assistant message.",
                    param=where,
                )
            text, parsed = tool_result(message)
            response = parsed if parsed is not None else {"result": text}
            turn_role, parts = "user", [{"functionResponse": {"name": name, "response": response}}]
        else:
            raise GatewayError(
                400, f"{where}: role {role!r} is not supported.", param=f"{where}.role"
            )
        add_turn(contents, turn_role, parts, "parts")
    for content in contents:
        # A turn that answers function calls starts with the answers.
        if content["role"] == "user":
            content["parts"].sort(key=lambda part: "functionResponse" not in part)
    return system, contents


def _content_parts(content: Any, where: str, text_only: bool = False) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url" and not text_only:
            parts.append(_image((part.get("image_url") or {}).get("url") or "", where))
        else:
            raise GatewayError(
                400,
                f"{where}: content part type {kind!r} is not supported for Gemini models.",
                param=where,
                code="unsupported_parameter",
            )
    return parts


def _image(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if ";base64" not in header:
            raise GatewayError(400, f"{where}: image data URLs must be base64.", param=where)
        return {"inlineData": {"mimeType": header[5:].split(";")[0], "data": data}}
    if url.startswith(("http://", "https://", "gs://")):
        mime = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise GatewayError(
        400, f"{where}: image_url.url must be an http(s), gs:// or data URL.", param=where
    )


def _generation_config(request: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("n", "candidateCount"),
    ):
        if request.get(ours) is not None:
            config[theirs] = request[ours]
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = request.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    elif fmt and fmt.get("type") != "text":
        raise RULES.refuse("response_format", f"type {fmt.get('type')!r} is not supported")
    effort = request.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = {"thinkingBudget": RULES.budget(effort), "includeThoughts": True}
    return config


def _tools(request: dict[str, Any], body: dict[str, Any]) -> None:
    declarations = []
    for function in RULES.function_tools(request):
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
    choice = request.get("tool_choice")
    if choice is None:
        return
    if choice == "auto":
        mode: dict[str, Any] = {"mode": "AUTO"}
    elif choice == "none":
        mode = {"mode": "NONE"}
    elif choice == "required":
        mode = {"mode": "ANY"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        mode = {"mode": "ANY", "allowedFunctionNames": [(choice.get("function") or {}).get("name")]}
    else:
        raise RULES.refuse("tool_choice", f"value {choice!r} is not supported")
    body["toolConfig"] = {"functionCallingConfig": mode}


# -- stream -------------------------------------------------------------------------------


class GeminiStream(CanonicalStream):
    """Each SSE event is a partial GenerateContentResponse: new text, whole function calls,
    and at the end the finish reason and usage."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.parser = SseParser()
        self.calls = 0
        self.finish_reason: str | None = None
        self.raw_usage: dict[str, Any] = {}
        self.started = False

    @property
    def usage(self) -> dict[str, Any] | None:
        return usage_from_gemini(self.raw_usage) if self.raw_usage else None

    @reads_upstream
    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self.parser.feed(data):
            if not event.data:
                continue
            response = orjson.loads(event.data)
            if isinstance(response.get("error"), dict):
                raise ProviderStreamError(error_from_gemini(500, event.data.encode()), out)
            try:
                _blocked(response)
            except GatewayError as error:
                raise ProviderStreamError(error, out) from None
            self.id = response.get("responseId") or self.id
            self.model = response.get("modelVersion") or self.model
            if response.get("usageMetadata"):
                self.raw_usage = response["usageMetadata"]
            if not self.started:
                self.started = True
                out.append(self.chunk({"role": "assistant", "content": ""}))
            for candidate in (response.get("candidates") or [])[:1]:
                text, reasoning, calls = _parts(candidate, self.id, self.calls)
                if reasoning:
                    out.append(self.chunk({"reasoning_content": reasoning}))
                if text:
                    out.append(self.chunk({"content": text}))
                for call in calls:
                    out.append(self.chunk({"tool_calls": [{"index": self.calls, **call}]}))
                    self.calls += 1
                if candidate.get("finishReason"):
                    self.finish_reason = _finish(candidate["finishReason"], [None] * self.calls)
        return out

    @reads_upstream
    def finish(self) -> list[dict[str, Any]]:
        if self.finish_reason is None:
            raise ProviderStreamError(
                GatewayError(
                    502,
                    "Gemini ended the stream without a finish reason.",
                    code="upstream_stream_truncated",
                    type="upstream_error",
                )
            )
        return self.closing(self.finish_reason, self.usage)
