"""The APIs clients speak, as strategies: how a call's body is read, and how its errors,
answers and stream events are written back in that API's own format.

One model-call handler serves every API; what differs between OpenAI's chat completions,
completions, embeddings and Responses and Anthropic's Messages and count_tokens is here, as
data and small pure methods (no I/O). A client API is served *natively* by providers of its own
family (`native`: the request goes through as it is), and through the canonical form by the
others (`canonical` in, `render` and `encoder` out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import msgspec
import orjson

from tollway.errors import GatewayError, error_payload
from tollway.llm import anthropic_messages, responses_output, responses_request, usage
from tollway.llm.stream_usage import (
    AnthropicUsage,
    ChunkUsage,
    ResponsesUsage,
    UsageWatcher,
    top_level_usage,
)

Family = Literal["openai", "anthropic", "cohere"]
Operation = Literal[
    "chat",
    "completions",
    "embeddings",
    "responses",
    "count_tokens",
    # The media and search APIs (llm/media_apis.py): served natively only.
    "images",
    "speech",
    "transcription",
    "moderations",
    "rerank",
    "realtime",
    "batches",
    # The Files API (llm/files_api.py): served by the gateway itself, no model.
    "files",
]


@dataclass(frozen=True, slots=True)
class Intake:
    """What the gateway reads of a call's body: the model, and whether it streams."""

    model: str
    stream: bool
    include_usage: bool


class StreamEncoder(Protocol):
    """Canonical chunks -> the client's stream events."""

    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, status: int, message: str) -> bytes: ...


_NOT_AN_OBJECT = "We could not parse the JSON body of your request. The body must be a JSON object."
# Where a body check failed, from msgspec's message: "... - at `$.messages[0]`".
_AT = re.compile(r" - at `\$\.(.+)`$")


class _Message(msgspec.Struct):
    role: str


class OpenAIBody(msgspec.Struct):
    """The fields of an OpenAI request the gateway reads; the rest is skipped, not built."""

    model: Any = None
    stream: Any = False
    stream_options: Any = None


class _ChatBody(OpenAIBody):
    messages: list[_Message] | None = None


class _CompletionBody(OpenAIBody):
    prompt: Any = None


class _EmbeddingBody(OpenAIBody):
    input: Any = None


class _ResponsesBody(OpenAIBody):
    input: Any = msgspec.UNSET


class _AnthropicBody(msgspec.Struct):
    model: Any = None
    stream: Any = False


class ClientApi:
    """One client API. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    family: ClassVar[Family]
    operation: ClassVar[Operation]
    # The upstream path (relative to a provider's base URL) when served natively.
    endpoint: ClassVar[str]
    can_stream: ClassVar[bool] = True
    # Request headers passed on to a native provider (features the client chooses per call).
    forwarded_headers: ClassVar[tuple[bytes, ...]] = ()
    # The media APIs (llm/media_apis.py) differ: a multipart form instead of JSON (`form`),
    # an answer relayed as bytes as it comes (`raw_answer`: audio), an `accept` other than
    # JSON, and usage in units (images, seconds, characters) rather than tokens counted
    # from text (`counts_tokens`).
    form: ClassVar[bool] = False
    raw_answer: ClassVar[bool] = False
    counts_tokens: ClassVar[bool] = True
    accept: ClassVar[bytes] = b"application/json"
    _body_type: ClassVar[type[msgspec.Struct]]

    def __init__(self) -> None:
        self._decoder = msgspec.json.Decoder(self._body_type)

    # -- reading the call ------------------------------------------------------------------

    def intake(self, body: bytes) -> Intake:
        """Validate the body as far as the gateway needs, without building what it does not
        read (a long conversation is scanned, not turned into objects)."""
        try:
            parsed = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise self._invalid(str(exc)) from None
        except msgspec.DecodeError:
            raise GatewayError(400, _NOT_AN_OBJECT, code="invalid_json") from None
        return self._read(parsed)

    def intake_form(self, body: bytes, content_type: bytes | None) -> Intake:
        """`intake` for the APIs whose body is a multipart form (`form`)."""
        return self.intake(body)

    def _invalid(self, problem: str) -> GatewayError:
        found = _AT.search(problem)
        if found is None:  # the top level is not an object
            return GatewayError(400, _NOT_AN_OBJECT, code="invalid_json")
        field = found.group(1)
        return GatewayError(400, f"Invalid value at '{field}'.", param=field, code="invalid_value")

    def _read(self, parsed: Any) -> Intake:
        model = parsed.model
        if not isinstance(model, str) or not model:
            raise GatewayError(
                400, "You must provide a model parameter.", param="model", code="missing_model"
            )
        stream = parsed.stream
        if not isinstance(stream, bool):
            raise GatewayError(
                400, "'stream' must be a boolean.", param="stream", code="invalid_type"
            )
        options = parsed.stream_options
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return Intake(model, stream and self.can_stream, include_usage)

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        """The call in the canonical form (OpenAI's own APIs are the canonical form)."""
        return body

    def head_headers(self, stream: bool) -> tuple[tuple[bytes, bytes], ...]:
        """The content type and accept of a native call's upstream head. A form's content
        type (with its boundary) is the client's, forwarded per call."""
        accept = b"text/event-stream" if stream and not self.raw_answer else self.accept
        if self.form:
            return ((b"accept", accept),)
        return ((b"content-type", b"application/json"), (b"accept", accept))

    # -- answering ---------------------------------------------------------------------------

    def error_body(self, error: GatewayError) -> bytes:
        return error.body()

    def stream_error(self, message: str, code: str) -> bytes:
        """The final event of a stream that failed, in this API's stream format."""
        payload = error_payload(message, type="upstream_error", code=code)
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    def no_such_model(self, model: str) -> GatewayError:
        return GatewayError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def render(
        self, result: dict[str, Any], model: str, request: dict[str, Any] | None = None
    ) -> bytes:
        """A translated call's canonical result, as this API's answer body (`request`: the
        client's request, for APIs whose answers echo it)."""
        return orjson.dumps(result)

    def encoder(
        self, model: str, include_usage: bool, request: dict[str, Any] | None = None
    ) -> StreamEncoder:
        return OpenAIStreamEncoder(include_usage)

    # -- usage of native calls ---------------------------------------------------------------

    def usage_of(self, body: bytes) -> dict[str, Any] | None:
        """The canonical usage a native provider reported in its whole answer."""
        reported = top_level_usage(body)
        return reported if reported is None else self._canonical_usage(reported)

    def _canonical_usage(self, reported: dict[str, Any]) -> dict[str, Any]:
        return reported

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        """The canonical usage of a native call, from its request and its whole answer."""
        return self.usage_of(answer)

    def usage_watcher(self) -> UsageWatcher:
        """Reads the usage a native provider reports in its stream, event by event."""
        return ChunkUsage()

    def upstream_error(
        self, provider: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """A native provider's error answer, for the client: its own body when it is already
        in this API's error shape, else a gateway error that quotes it. 401 and 403 concern
        the gateway's credentials, not the client's: a 502 that says so."""
        if status in (401, 403):
            return self._credentials_refused(provider, status)
        passed = [(name, value) for name, value in headers if name in _PASSED_ON]
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return status, body, passed
        text = body[:300].decode("utf-8", "replace").strip()
        message = f"Upstream provider '{provider}' returned HTTP {status}"
        error = GatewayError(
            status, f"{message}: {text}" if text else message + ".", code="upstream_error"
        )
        return status, self.error_body(error), passed

    def _credentials_refused(
        self, provider: str, status: int
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        error = credentials_refused(provider, status)
        return error.status, self.error_body(error), []


_PASSED_ON = (b"retry-after", b"retry-after-ms")


def credentials_refused(provider: str, status: int) -> GatewayError:
    return GatewayError(
        502,
        f"Upstream provider '{provider}' rejected the gateway's credentials (HTTP {status}).",
        code="upstream_auth_failed",
    )


class OpenAIChat(ClientApi):
    name = "openai.chat_completions"
    family = "openai"
    operation = "chat"
    endpoint = "/chat/completions"
    _body_type = _ChatBody

    def _read(self, parsed: Any) -> Intake:
        intake = super()._read(parsed)
        # A prompt API (`prompt:NAME`) may take its variables without messages.
        if not parsed.messages and not intake.model.startswith("prompt:"):
            raise GatewayError(
                400,
                "'messages' must be a non-empty array of message objects.",
                param="messages",
                code="invalid_value",
            )
        return intake

    def _invalid(self, problem: str) -> GatewayError:
        found = _AT.search(problem)
        if found is not None and found.group(1).startswith("messages"):
            where = found.group(1).split("]")[0] + "]" if "[" in found.group(1) else "messages"
            if where == "messages":
                return GatewayError(
                    400,
                    "'messages' must be a non-empty array of message objects.",
                    param="messages",
                    code="invalid_value",
                )
            return GatewayError(
                400,
                f"{where} must be an object with a 'role'.",
                param=where,
                code="invalid_value",
            )
        return super()._invalid(problem)


class OpenAICompletions(ClientApi):
    name = "openai.completions"
    family = "openai"
    operation = "completions"
    endpoint = "/completions"
    _body_type = _CompletionBody

    def _read(self, parsed: Any) -> Intake:
        intake = super()._read(parsed)
        if not isinstance(parsed.prompt, str | list):
            raise GatewayError(
                400, "'prompt' must be a string or an array.", param="prompt", code="invalid_value"
            )
        return intake


class OpenAIEmbeddings(ClientApi):
    name = "openai.embeddings"
    family = "openai"
    operation = "embeddings"
    endpoint = "/embeddings"
    can_stream = False
    _body_type = _EmbeddingBody

    def _read(self, parsed: Any) -> Intake:
        intake = super()._read(parsed)
        value = parsed.input
        if not (isinstance(value, str) or (isinstance(value, list) and value)):
            raise GatewayError(
                400,
                "'input' must be a string or a non-empty array.",
                param="input",
                code="invalid_value",
            )
        return intake


class OpenAIResponses(ClientApi):
    """The Responses API: native on the providers that have it, translated through the
    canonical form on every other (llm/responses_request.py and responses_output.py)."""

    name = "openai.responses"
    family = "openai"
    operation = "responses"
    endpoint = "/responses"
    # Beta features are chosen per request by the client; pass its choice on.
    forwarded_headers = (b"openai-beta",)
    _body_type = _ResponsesBody

    def _read(self, parsed: Any) -> Intake:
        intake = super()._read(parsed)
        if parsed.input is not msgspec.UNSET and not isinstance(parsed.input, str | list):
            raise GatewayError(
                400,
                "'input' must be a string or an array of items.",
                param="input",
                code="invalid_value",
            )
        return intake

    def stream_error(self, message: str, code: str) -> bytes:
        """As the Responses API reports a failure mid-stream, with the `error` object that
        makes OpenAI's SDKs raise (responses_output.error_event). A stream passed through is
        not parsed, so its last sequence number is not known here."""
        payload = {
            "type": "error",
            **responses_output.error_event(code, message),
            "sequence_number": 0,
        }
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        return responses_request.to_chat_request(body)

    def render(
        self, result: dict[str, Any], model: str, request: dict[str, Any] | None = None
    ) -> bytes:
        return orjson.dumps(responses_output.to_response(result, request or {}, model))

    def encoder(
        self, model: str, include_usage: bool, request: dict[str, Any] | None = None
    ) -> StreamEncoder:
        return responses_output.ResponseEvents(model, request or {})

    def _canonical_usage(self, reported: dict[str, Any]) -> dict[str, Any]:
        return usage.from_responses(reported)

    def usage_watcher(self) -> UsageWatcher:
        return ResponsesUsage()


class AnthropicMessages(ClientApi):
    """Anthropic's Messages API: native on Anthropic-format providers, translated elsewhere
    (see llm/anthropic_messages.py for the rules)."""

    name = "anthropic.messages"
    family = "anthropic"
    operation: ClassVar[Operation] = "chat"
    endpoint = "/messages"
    # Beta features are chosen per request by the client; pass its choice on.
    forwarded_headers = (b"anthropic-beta",)
    _body_type = _AnthropicBody

    def _invalid(self, problem: str) -> GatewayError:
        found = _AT.search(problem)
        if found is None:
            return GatewayError(400, _NOT_AN_OBJECT, code="invalid_json")
        return GatewayError(400, f"{found.group(1)}: invalid value", param=found.group(1))

    def _read(self, parsed: Any) -> Intake:
        model = parsed.model
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "model: Field required", param="model")
        return Intake(model, parsed.stream is True and self.can_stream, True)

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        return anthropic_messages.to_chat_request(body)

    def error_body(self, error: GatewayError) -> bytes:
        return anthropic_messages.error_body(error.status, error.message)

    def stream_error(self, message: str, code: str) -> bytes:
        return b"event: error\ndata: " + anthropic_messages.error_body(502, message) + b"\n\n"

    def no_such_model(self, model: str) -> GatewayError:
        return GatewayError(404, f"model: {model} (not found or not available)", param="model")

    def render(
        self, result: dict[str, Any], model: str, request: dict[str, Any] | None = None
    ) -> bytes:
        return orjson.dumps(anthropic_messages.to_message(result, model))

    def encoder(
        self, model: str, include_usage: bool, request: dict[str, Any] | None = None
    ) -> StreamEncoder:
        return anthropic_messages.MessageEvents(model)

    def upstream_error(
        self, provider: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if status in (401, 403):
            return self._credentials_refused(provider, status)
        # Anthropic's own error body is already in the client's format.
        return status, body, []

    def _canonical_usage(self, reported: dict[str, Any]) -> dict[str, Any]:
        return usage.from_anthropic(reported)

    def usage_watcher(self) -> UsageWatcher:
        return AnthropicUsage()


class AnthropicCountTokens(AnthropicMessages):
    name = "anthropic.count_tokens"
    operation = "count_tokens"
    endpoint = "/messages/count_tokens"
    can_stream = False

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        # count_tokens takes no max_tokens; the mapping wants one and counts none.
        return anthropic_messages.to_chat_request({**body, "max_tokens": 1, "stream": False})

    def render(
        self, result: dict[str, Any], model: str, request: dict[str, Any] | None = None
    ) -> bytes:
        return orjson.dumps(result)

    def usage_of(self, body: bytes) -> dict[str, Any] | None:
        return None  # counting tokens uses none


class OpenAIStreamEncoder:
    """Canonical chunks as OpenAI's own stream: a usage chunk only when the client asked."""

    __slots__ = ("include_usage",)

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if not chunk.get("choices") and not self.include_usage:
            return b""
        if self.include_usage and chunk.get("choices"):
            chunk = {**chunk, "usage": None}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, status: int, message: str) -> bytes:
        payload = error_payload(message, type="upstream_error", code="upstream_stream_interrupted")
        return b"data: " + orjson.dumps(payload) + b"\n\n"


OPENAI_CHAT = OpenAIChat()
OPENAI_COMPLETIONS = OpenAICompletions()
OPENAI_EMBEDDINGS = OpenAIEmbeddings()
OPENAI_RESPONSES = OpenAIResponses()
ANTHROPIC_MESSAGES = AnthropicMessages()
ANTHROPIC_COUNT_TOKENS = AnthropicCountTokens()

# Every client API, by name (route tables name them).
CLIENT_APIS: dict[str, ClientApi] = {
    api.name: api
    for api in (
        OPENAI_CHAT,
        OPENAI_COMPLETIONS,
        OPENAI_EMBEDDINGS,
        OPENAI_RESPONSES,
        ANTHROPIC_MESSAGES,
        ANTHROPIC_COUNT_TOKENS,
    )
}
