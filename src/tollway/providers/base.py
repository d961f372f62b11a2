"""The protocol every provider adapter implements: pure mappings, no I/O.

An adapter turns a canonical chat request (OpenAI Chat Completions JSON, see `tollway.llm`)
into the provider's HTTP request, and the provider's response, stream and errors back into
the canonical form. The upstream client does the I/O; the adapter never sees a socket, so each
one is tested against recorded fixtures and by the shared conformance suite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from tollway.errors import GatewayError

# The forced tool that carries JSON mode on APIs without a JSON response format (Anthropic's
# older models, Bedrock): the model "calls" it, and its input is the JSON answer.
JSON_TOOL = "tollway_json_response"


def json_mode(request: Mapping[str, Any]) -> bool:
    """Whether a canonical request asks for a JSON answer (response_format json_object or
    json_schema)."""
    fmt = request.get("response_format")
    return isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema")


# -- system messages in the middle of a conversation ---------------------------------------
#
# A canonical conversation may carry system (or developer) messages after its first turn:
# OpenAI's API takes them anywhere, and Anthropic clients send them (Claude Code's
# mid-conversation-system beta). Those that open the conversation are the system instruction;
# a later one applies from where it stands. Providers without a system role inside the
# conversation get it as a marked note in a user turn, at its place.

SYSTEM_ROLES = ("system", "developer")


def leading_system(messages: list[dict[str, Any]]) -> int:
    """How many system/developer messages open the conversation (its system instruction)."""
    count = 0
    for message in messages:
        if message.get("role") not in SYSTEM_ROLES:
            break
        count += 1
    return count


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text of its text parts."""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "")
        for part in content or []
        if isinstance(part, Mapping) and part.get("type") == "text"
    )


def system_note(text: str) -> str:
    """A mid-conversation system message as the text of a user turn, marked so that the model
    can tell the instruction from what the user wrote."""
    return f"<system-message>\n{text}\n</system-message>"


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


# What every translating adapter reads of a canonical request, and what each drops: request
# bookkeeping that only OpenAI keeps (store, metadata, ...) changes nothing about the answer.
COMMON_MAPPED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning_effort",
    }
)
COMMON_DROPPED = frozenset(
    {"metadata", "prompt_cache_key", "safety_identifier", "service_tier", "store", "stream_options"}
)
# reasoning_effort as a thinking budget in tokens, where an API takes a budget.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}


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


class ProviderStreamError(Exception):
    """The provider reported an error, or broke off, in the middle of a stream."""

    def __init__(self, error: GatewayError, before: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        # What the same read of the stream held before the error, translated: the client gets
        # it before the error (a provider's text is not lost because its error came with it).
        self.before = before or []


class ProviderResponseError(Exception):
    """The provider's answer could not be read (not the JSON or events its API defines): the
    gateway answers 502, as for any upstream that breaks its protocol."""


_UNREADABLE = (
    orjson.JSONDecodeError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    UnicodeDecodeError,
)

F = TypeVar("F", bound=Callable[..., Any])


def reads_upstream(function: F) -> F:
    """Marks a mapping that reads the provider's answer: a body that does not have the shape
    the provider's API defines becomes a ProviderResponseError. Only such mappings carry this
    mark: a failure while building the request, or anywhere else, is the gateway's own bug
    and must not pass for an upstream failure."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (GatewayError, ProviderStreamError):
            raise
        except _UNREADABLE as exc:
            raise ProviderResponseError(f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class ChatAdapter(Protocol):
    """Chat completions for one provider wire format."""

    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        """The provider request for a canonical request. Raises GatewayError (400) for a
        parameter the provider cannot honour and that no documented rule drops."""
        ...

    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        """A canonical chat.completion from the provider's response body."""
        ...

    def chat_stream(self, model: str, request: Mapping[str, Any] | None = None) -> StreamTranslator:
        """The translator for one streamed answer; `request` is the canonical request it
        answers (what a translator needs to know of it: whether JSON mode rides on a tool)."""
        ...

    def error(self, status: int, body: bytes) -> GatewayError:
        """The provider's error response in OpenAI's shape, classified by `code`
        (rate_limit_exceeded, context_length_exceeded, content_policy_violation, ...)."""
        ...


class EmbeddingsAdapter(Protocol):
    """OpenAI's /v1/embeddings on a provider with its own embeddings API."""

    def embeddings_call(self, request: dict[str, Any], model: str) -> UpstreamCall: ...

    def embeddings_response(
        self, body: bytes, model: str, request: dict[str, Any]
    ) -> dict[str, Any]: ...


class ImagesAdapter(Protocol):
    """OpenAI's /v1/images/generations on a provider whose models answer with images."""

    def images_call(self, request: dict[str, Any], model: str) -> UpstreamCall: ...

    def images_response(self, body: bytes, model: str) -> dict[str, Any]: ...


class RerankAdapter(Protocol):
    """Cohere-shaped rerank on a provider with rerank models of its own. `region` names the
    provider's region, where its API names models by an ARN that holds it."""

    def rerank_call(self, request: dict[str, Any], model: str, region: str) -> UpstreamCall: ...

    def rerank_response(self, body: bytes, request: dict[str, Any]) -> dict[str, Any]: ...


class TokenCountingAdapter(Protocol):
    """The provider's own exact token count for a canonical chat request."""

    def count_tokens_call(self, request: dict[str, Any], model: str) -> UpstreamCall: ...

    def count_tokens_response(self, body: bytes) -> int: ...
