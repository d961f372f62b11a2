"""The model APIs beyond text generation: images, audio, moderations and rerank.

They are served natively, by providers that speak them (OpenAI, Azure OpenAI and the
OpenAI-compatible servers; Cohere and the compatible rerank servers): the request goes through
as the client sent it, the model renamed when a deployment says so, and the answer comes back
as it is. What differs from the text APIs, and is declared here:

- image edits and variations and audio transcriptions and translations are multipart forms:
  only the `model` field is read (llm/multipart.py), and the upload is passed on untouched;
- speech is audio, relayed as it is produced (`raw_answer`);
- their usage is in units the catalog prices (images, seconds of audio, characters, search
  units), besides the tokens some models report; nothing is counted from text the way a chat
  answer's tokens are.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import msgspec
import orjson

from tollway.errors import GatewayError
from tollway.llm.client_apis import ClientApi, Intake, OpenAIBody
from tollway.llm.multipart import MultipartError, boundary_of, count, field, parts
from tollway.llm.stream_usage import ChunkUsage, UsageWatcher


class _ImagesBody(OpenAIBody):
    prompt: Any = None


class _SpeechBody(OpenAIBody):
    input: Any = None
    voice: Any = None


class _ModerationsBody(OpenAIBody):
    input: Any = None


class _RerankBody(msgspec.Struct):
    model: Any = None
    query: Any = None
    documents: Any = None


def _required_text(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise GatewayError(
            400, f"'{name}' must be a non-empty string.", param=name, code="invalid_value"
        )


def _tokens(reported: dict[str, Any]) -> dict[str, Any]:
    """Tokens as OpenAI's media answers report them (input/output), in the canonical names."""
    out: dict[str, Any] = {}
    prompt = reported.get("input_tokens")
    completion = reported.get("output_tokens")
    if isinstance(prompt, int):
        out["prompt_tokens"] = prompt
    if isinstance(completion, int):
        out["completion_tokens"] = completion
    if out:
        out["total_tokens"] = out.get("prompt_tokens", 0) + out.get("completion_tokens", 0)
    details = reported.get("input_token_details")
    if isinstance(details, dict) and isinstance(details.get("audio_tokens"), int):
        # Audio heard, priced apart from text where the catalog says so (transcription).
        out["prompt_tokens_details"] = {"audio_tokens": details["audio_tokens"]}
    return out


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


class MediaApi(ClientApi):
    """What the media APIs share: OpenAI's error format, native service only, usage read
    from the call (`call_usage`), never counted from text."""

    family: ClassVar[Any] = "openai"
    can_stream = False
    counts_tokens = False
    # A model the API defaults to when the request names none (as OpenAI's does).
    default_model: ClassVar[str | None] = None
    _body_type: ClassVar[type[msgspec.Struct]] = OpenAIBody

    def _read(self, parsed: Any) -> Intake:
        if parsed.model is None and self.default_model is not None:
            parsed.model = self.default_model
        return super()._read(parsed)

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        raise GatewayError(400, f"{self.endpoint} is served natively only.")

    def usage_of(self, body: bytes) -> dict[str, Any] | None:
        return self.call_usage(b"", body)

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        return None


class _ImagesAnswer(msgspec.Struct):
    """Of an images answer, what metering reads: how many images (each left unparsed, a view
    of the answer: base64 images of megabytes are not copied into strings), and the usage."""

    data: list[msgspec.Raw] | None = None
    usage: dict[str, Any] | None = None


_IMAGES_ANSWER = msgspec.json.Decoder(_ImagesAnswer)


def _images_usage(answer: bytes) -> dict[str, Any] | None:
    try:
        parsed = _IMAGES_ANSWER.decode(answer)
    except msgspec.DecodeError:
        return None
    usage: dict[str, Any] = {"images": len(parsed.data) if parsed.data is not None else 0}
    if parsed.usage is not None:
        usage.update(_tokens(parsed.usage))
    return usage


class OpenAIImages(MediaApi):
    """Image generation; streamed (partial images as events) where the model does it."""

    name = "openai.images_generations"
    operation = "images"
    endpoint = "/images/generations"
    default_model = "dall-e-2"
    can_stream = True
    _body_type = _ImagesBody

    def _read(self, parsed: Any) -> Intake:
        _required_text(parsed.prompt, "prompt")
        return super()._read(parsed)

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        """Translated (a Gemini image model): the request as it is."""
        return body

    def render(
        self, result: dict[str, Any], model: str, request: dict[str, Any] | None = None
    ) -> bytes:
        """A translated answer in OpenAI's shape: its usage as the images API words it."""
        usage = result.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        answer = {
            "created": result.get("created"),
            "data": result.get("data") or [],
            "usage": {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
                "input_tokens_details": {"text_tokens": prompt, "image_tokens": 0},
            },
        }
        return orjson.dumps(answer)

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        return _images_usage(answer)

    def usage_watcher(self) -> UsageWatcher:
        return _TokenEventsUsage()


def not_a_form(endpoint: str) -> GatewayError:
    return GatewayError(
        400,
        f"{endpoint} takes a multipart/form-data body (Content-Type with a boundary).",
        code="invalid_content_type",
    )


class FormApi(MediaApi):
    """An API whose request is a multipart form: the upload goes through untouched."""

    form = True
    forwarded_headers = (b"content-type",)
    # The file fields the form must carry (any one of each tuple).
    files: ClassVar[tuple[tuple[str, ...], ...]] = ()
    texts: ClassVar[tuple[str, ...]] = ()

    def intake_form(self, body: bytes, content_type: bytes | None) -> Intake:
        boundary = boundary_of(content_type)
        if boundary is None:
            raise not_a_form(self.endpoint)
        try:
            found = parts(body, boundary)
            if count(found, "model") > 1:
                raise GatewayError(
                    400,
                    "The form gives 'model' more than once.",
                    param="model",
                    code="invalid_value",
                )
            model = field(body, found, "model") or self.default_model
            for name in self.texts:
                if not field(body, found, name):
                    raise GatewayError(
                        400, f"'{name}' is a required field.", param=name, code="missing_field"
                    )
        except MultipartError as exc:
            raise GatewayError(
                400, f"The multipart body could not be read: {exc}.", code="invalid_multipart"
            ) from None
        if not model:
            raise GatewayError(
                400, "You must provide a model parameter.", param="model", code="missing_model"
            )
        for names in self.files:
            if not any(p.filename is not None and p.name in names for p in found):
                raise GatewayError(
                    400,
                    f"'{names[0]}' is a required file.",
                    param=names[0],
                    code="missing_file",
                )
        return Intake(model, False, False)


class OpenAIImageEdits(FormApi):
    name = "openai.images_edits"
    operation = "images"
    endpoint = "/images/edits"
    default_model = "dall-e-2"
    files: ClassVar[tuple[tuple[str, ...], ...]] = (("image", "image[]"),)
    texts: ClassVar[tuple[str, ...]] = ("prompt",)

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        return _images_usage(answer)


class OpenAIImageVariations(OpenAIImageEdits):
    name = "openai.images_variations"
    endpoint = "/images/variations"
    files = (("image",),)
    texts = ()


class OpenAITranscriptions(FormApi):
    name = "openai.audio_transcriptions"
    operation = "transcription"
    endpoint = "/audio/transcriptions"
    files = (("file",),)
    accept = b"*/*"

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        """Seconds of audio (or tokens) as the answer reports them; for answers that carry
        none (text, srt, vtt), a WAV upload's own duration."""
        parsed = _json(answer)
        if parsed is not None:
            reported = parsed.get("usage")
            if isinstance(reported, dict):
                if reported.get("type") == "duration":
                    seconds = reported.get("seconds")
                    if isinstance(seconds, int | float):
                        return {"seconds": float(seconds)}
                tokens = _tokens(reported)
                if tokens:
                    return tokens
            duration = parsed.get("duration")
            if isinstance(duration, int | float):
                return {"seconds": float(duration)}
        seconds = _uploaded_wav_seconds(request)
        return None if seconds is None else {"seconds": seconds}


class OpenAITranslations(OpenAITranscriptions):
    name = "openai.audio_translations"
    endpoint = "/audio/translations"


def _uploaded_wav_seconds(request: bytes) -> float | None:
    """The duration of the form's `file` when it is a WAV file, from its header."""
    line_end = request.find(b"\r\n")
    if not request.startswith(b"--") or line_end < 0:
        return None
    try:
        found = parts(request, request[2:line_end])
    except MultipartError:
        return None
    for part in found:
        if part.name == "file" and part.filename is not None:
            head = request[part.start : min(part.end, part.start + 4096)]
            return wav_seconds(head, part.end - part.start)
    return None


def wav_seconds(head: bytes, length: int | None = None) -> float | None:
    """A WAV file's duration from its first bytes (RIFF header, `fmt ` and `data` chunks); a
    data size larger than the file (`length`), as streaming writers leave it, is cut to it."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    at = 12
    byte_rate = 0
    while at + 8 <= len(head):
        kind, size = head[at : at + 4], struct.unpack_from("<I", head, at + 4)[0]
        if kind == b"fmt " and at + 16 <= len(head):
            byte_rate = struct.unpack_from("<I", head, at + 16)[0]
        elif kind == b"data":
            if length is not None:
                size = min(size, max(0, length - at - 8))
            return size / byte_rate if byte_rate else None
        at += 8 + size + (size & 1)
    return None


class OpenAISpeech(MediaApi):
    """Text to speech: the audio is relayed to the client as the provider produces it."""

    name = "openai.audio_speech"
    operation = "speech"
    endpoint = "/audio/speech"
    raw_answer = True
    can_stream = True
    accept = b"*/*"
    _body_type = _SpeechBody

    def _read(self, parsed: Any) -> Intake:
        _required_text(parsed.input, "input")
        _required_text(parsed.voice, "voice")
        intake = super()._read(parsed)
        # Always relayed as a stream: the answer is audio, sent on as it comes.
        return Intake(intake.model, True, False)

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        parsed = _json(request)
        text = parsed.get("input") if parsed is not None else None
        return {"characters": len(text)} if isinstance(text, str) else None

    def usage_watcher(self) -> UsageWatcher:
        return _TokenEventsUsage()


class _TokenEventsUsage(ChunkUsage):
    """A media stream's usage event (speech with `stream_format: sse`: `speech.audio.done`;
    a streamed image: `image_generation.completed`), its input/output tokens renamed."""

    __slots__ = ()

    def feed(self, events: bytes) -> None:
        super().feed(events)
        if self.usage is not None and "input_tokens" in self.usage:
            self.usage = _tokens(self.usage)


class OpenAIModerations(MediaApi):
    name = "openai.moderations"
    operation = "moderations"
    endpoint = "/moderations"
    default_model = "omni-moderation-latest"
    _body_type = _ModerationsBody

    def _read(self, parsed: Any) -> Intake:
        value = parsed.input
        if not (isinstance(value, str) or (isinstance(value, list) and value)):
            raise GatewayError(
                400,
                "'input' must be a string or a non-empty array.",
                param="input",
                code="invalid_value",
            )
        return super()._read(parsed)

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        parsed = _json(answer)
        results = parsed.get("results") if parsed is not None else None
        return {"inputs": len(results)} if isinstance(results, list) else None


class Rerank(MediaApi):
    """Rerank in the shape Cohere and the compatible servers (vLLM, Jina, TEI) share: a query
    and documents in, their indices by relevance out. Errors in Cohere's shape."""

    name = "rerank"
    family = "cohere"
    operation = "rerank"
    endpoint = "/rerank"
    _body_type = _RerankBody

    def _read(self, parsed: Any) -> Intake:
        model = parsed.model
        if not isinstance(model, str) or not model:
            raise GatewayError(
                400, "You must provide a model parameter.", param="model", code="missing_model"
            )
        _required_text(parsed.query, "query")
        if not isinstance(parsed.documents, list) or not parsed.documents:
            raise GatewayError(
                400,
                "'documents' must be a non-empty array.",
                param="documents",
                code="invalid_value",
            )
        return Intake(model, False, False)

    def error_body(self, error: GatewayError) -> bytes:
        return orjson.dumps({"message": error.message})

    def canonical(self, body: dict[str, Any]) -> dict[str, Any]:
        """Translated (Bedrock's rerank models): the request as it is."""
        return body

    def render(
        self, result: dict[str, Any], model: str, request: dict[str, Any] | None = None
    ) -> bytes:
        """A translated answer, in Cohere's shape: its usage is the gateway's, not Cohere's."""
        return orjson.dumps({k: v for k, v in result.items() if k != "usage"})

    def upstream_error(
        self, provider: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        parsed = _json(body)
        if status not in (401, 403) and parsed is not None and "message" in parsed:
            return status, body, []
        return super().upstream_error(provider, status, headers, body)

    def call_usage(self, request: bytes, answer: bytes) -> dict[str, Any] | None:
        parsed = _json(answer)
        if parsed is None:
            return None
        usage: dict[str, Any] = {}
        meta = parsed.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        if isinstance(billed, dict) and isinstance(billed.get("search_units"), int | float):
            usage["search_units"] = billed["search_units"]
        reported = parsed.get("usage")
        if isinstance(reported, dict) and isinstance(reported.get("total_tokens"), int):
            usage["prompt_tokens"] = usage["total_tokens"] = reported["total_tokens"]
        if not usage and isinstance(parsed.get("results"), list):
            usage["search_units"] = 1
        return usage


OPENAI_IMAGES = OpenAIImages()
OPENAI_IMAGE_EDITS = OpenAIImageEdits()
OPENAI_IMAGE_VARIATIONS = OpenAIImageVariations()
OPENAI_SPEECH = OpenAISpeech()
OPENAI_TRANSCRIPTIONS = OpenAITranscriptions()
OPENAI_TRANSLATIONS = OpenAITranslations()
OPENAI_MODERATIONS = OpenAIModerations()
RERANK = Rerank()

# The gateway's paths for each (under /v1, and under each ai service's prefix).
MEDIA_ROUTES: dict[str, ClientApi] = {
    "/v1/images/generations": OPENAI_IMAGES,
    "/v1/images/edits": OPENAI_IMAGE_EDITS,
    "/v1/images/variations": OPENAI_IMAGE_VARIATIONS,
    "/v1/audio/speech": OPENAI_SPEECH,
    "/v1/audio/transcriptions": OPENAI_TRANSCRIPTIONS,
    "/v1/audio/translations": OPENAI_TRANSLATIONS,
    "/v1/moderations": OPENAI_MODERATIONS,
    # Cohere's SDK calls /v2/rerank; the compatible servers' clients /v1/rerank or /rerank.
    "/v1/rerank": RERANK,
    "/v2/rerank": RERANK,
}

MEDIA_APIS: dict[str, ClientApi] = {api.name: api for api in MEDIA_ROUTES.values()}
