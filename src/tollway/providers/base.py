"""The protocol every provider adapter implements: pure mappings, no I/O.

An adapter turns a canonical chat request (OpenAI Chat Completions JSON, see `tollway.llm`)
into the provider's HTTP request, and the provider's response, stream and errors back into
the canonical form. The upstream client does the I/O; the adapter never sees a socket, so each
one is tested against recorded fixtures and by the shared conformance suite.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from tollway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One HTTP request to a provider. `path` is relative to the provider's base URL."""

    path: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())
    method: bytes = b"POST"


class StreamTranslator(Protocol):
    """Turns a provider's stream into canonical chunks (OpenAI chat.completion.chunk dicts)."""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Bytes as they arrive; the chunks they complete. Raises ProviderStreamError when
        the provider reports an error inside the stream."""
        ...

    def finish(self) -> list[dict[str, Any]]:
        """At the end of the upstream body: the last chunks. Raises ProviderStreamError if the
        stream ended before the provider said it was complete."""
        ...

    @property
    def usage(self) -> dict[str, Any] | None:
        """The canonical usage, once the provider has reported it."""
        ...


@dataclass(frozen=True, slots=True)
class ParameterRules:
    """An adapter's contract for canonical parameters: those it maps, those it drops by a
    documented rule; anything else is refused with a 400 that names it."""

    provider: str  # as it reads in messages: "Anthropic"
    mapped: frozenset[str]
    dropped: frozenset[str]
    single_choice: bool = True  # the provider returns one choice: n must be 1
    budgets: Mapping[str, int] = field(default_factory=dict)  # reasoning_effort -> tokens

    def refuse(self, param: str, why: str) -> GatewayError:
        return GatewayError(
            400,
            f"Parameter '{param}' {why} for {self.provider} models.",
            param=param,
            code="unsupported_parameter",
        )

    def check(self, request: Mapping[str, Any]) -> None:
        for key in request:
            if key not in self.mapped and key not in self.dropped:
                raise self.refuse(key, "is not supported")
        if self.single_choice and (request.get("n") or 1) != 1:
            raise self.refuse("n", "must be 1")

    def budget(self, effort: str) -> int:
        """The thinking budget for a reasoning_effort."""
        if effort not in self.budgets:
            raise self.refuse("reasoning_effort", f"must be one of {', '.join(self.budgets)}")
        return self.budgets[effort]

    def function_tools(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The `function` objects of the request's tools; other tool types are refused."""
        functions = []
        for i, tool in enumerate(request.get("tools") or []):
            if tool.get("type") != "function":
                raise self.refuse(f"tools[{i}]", "must be a function tool")
            functions.append(tool.get("function") or {})
        return functions


def error_object(body: bytes, nested: bool = True) -> dict[str, Any]:
    """A provider's error object: `body["error"]` (nested) or the body itself; {} when the body
    is not such JSON."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    found = (parsed.get("error") if nested else parsed) if isinstance(parsed, dict) else None
    return found if isinstance(found, dict) else {}


def error_message(error: Mapping[str, Any], body: bytes, status: int) -> str:
    """The error object's message, else the start of the raw body, else the status."""
    return (
        str(error.get("message") or "")
        or body[:300].decode("utf-8", "replace").strip()
        or f"HTTP {status}"
    )


def tool_call(call_id: str | None, name: str | None, arguments: Any) -> dict[str, Any]:
    """A canonical tool call; `arguments` is the provider's object (serialised here)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments or {}).decode()},
    }


def call_arguments(call: Mapping[str, Any], where: str) -> Any:
    """A canonical tool call's arguments as the object providers take; a 400 if not JSON."""
    try:
        return orjson.loads((call.get("function") or {}).get("arguments") or "{}")
    except orjson.JSONDecodeError:
        raise GatewayError(
            400, f"{where}.tool_calls: arguments must be JSON.", param=where
        ) from None


def assistant_message(
    text: str,
    calls: list[dict[str, Any]],
    reasoning: str = "",
    thinking_blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The canonical assistant message: content is null only when the turn is all tool
    calls; reasoning and thinking blocks ride along for the next turn (see tollway.llm)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning or thinking_blocks:
        message["reasoning_content"] = reasoning
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    return message


def choice(message: dict[str, Any], finish: str | None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def completion(
    cid: str, model: str, choices: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    """The canonical chat.completion envelope."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def usage_with_cache(fresh: int, completion: int, read: int, written: int) -> dict[str, Any]:
    """Canonical usage from APIs that count cache reads and writes apart from the other input
    (Anthropic, Bedrock): prompt_tokens is all input, cached_tokens the reads."""
    prompt = fresh + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_creation_input_tokens": written,
    }


def tool_result(message: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A tool message's text, and that text as a JSON object when it is one (providers that
    take structured results get the object)."""
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(part.get("text", "") for part in content or [])
    )
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return text, parsed if isinstance(parsed, dict) else None


def add_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str) -> None:
    """Append a turn, merged into the previous one of the same role: these APIs want turns to
    alternate (consecutive tool results, in particular, form one turn)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


class CanonicalStream:
    """What every stream translator shares: the chunk envelope and the closing pair (the
    final chunk with its finish reason, then the usage chunk with no choices)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self._usage: dict[str, Any] | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The canonical usage, once the provider has reported it."""
        return self._usage

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def closing(self, finish: str, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [
            self.chunk({}, finish),
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            },
        ]


class ProviderStreamError(Exception):
    """The provider reported an error, or broke off, in the middle of a stream."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class ChatAdapter(Protocol):
    """Chat completions for one provider wire format."""

    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        """The provider request for a canonical request. Raises GatewayError (400) for a
        parameter the provider cannot honour and that no documented rule drops."""
        ...

    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        """A canonical chat.completion from the provider's response body."""
        ...

    def chat_stream(self, model: str) -> StreamTranslator: ...

    def error(self, status: int, body: bytes) -> GatewayError:
        """The provider's error response in OpenAI's shape, classified by `code`
        (rate_limit_exceeded, context_length_exceeded, content_policy_violation, ...)."""
        ...
