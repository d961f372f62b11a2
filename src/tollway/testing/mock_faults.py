"""How the mock provider behaves for a request: latency, stream shape, and injected faults.

Three layers, each overriding the one before: the command line's defaults, the request
header `x-mock-fault`, and a suffix on the model name after `~` (which survives any gateway,
since every provider's request carries the model). Both take `key=value` pairs separated by
commas, e.g. `gpt-4o~cut_after=3,chunk_delay_ms=50` or `x-mock-fault: status=503`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

_FLOATS = {"error_rate", "reset_rate", "latency_ms", "chunk_delay_ms", "audio_seconds"}
_INTS = {
    "status",
    "chunks",
    "words",
    "cut_after",
    "pad",
    "dims",
    "tool_calls",
    "stream_error_after",
}
_BOOLS = {"reset", "echo", "preamble", "no_usage", "json_slip"}
_STRINGS = {"tool", "refuse"}


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class FaultSpec:
    # Answer every request with this HTTP error status.
    status: int | None = None
    # Probability of answering with an error status, drawn from error_status.
    error_rate: float = 0.0
    error_status: tuple[int, ...] = (500,)
    # Probability of resetting the connection (TCP RST) before answering; `reset` always does.
    reset_rate: float = 0.0
    reset: bool = False
    # Wait this long before the response head (a slow first byte).
    latency_ms: float = 0.0
    # Streams: content is split into this many chunks, with this delay between chunks.
    chunks: int = 20
    chunk_delay_ms: float = 0.0
    # Close the connection after this many chunks (streams) or half the body (others).
    cut_after: int | None = None
    # Length of the generated reply in words (~ tokens), before max_tokens caps it.
    words: int = 50
    # Extra characters per streamed chunk, for large-stream and backpressure tests.
    pad: int = 0
    # Reply with the last user message instead of generated words.
    echo: bool = False
    # Embedding width when the request gives no `dimensions`.
    dims: int = 256
    # How many of the offered tools to call at once (parallel tool calls).
    tool_calls: int = 1
    # Streams: after this many events, send the provider's own mid-stream error event.
    stream_error_after: int | None = None
    # Write a sentence before calling tools (as models do), in the formats that carry text
    # beside tool calls: a JSON answer carried by a forced tool must not take it in.
    preamble: bool = False
    # Chat answers and streams report no usage (some OpenAI-compatible servers do not).
    no_usage: bool = False
    # A JSON answer asked for in a conversation with no assistant turn yet comes in prose,
    # with the schema's first required property left out (asked again, after an answer, it
    # fits): for structured-output repair tests.
    json_slip: bool = False
    # Call the offered tool of this name (an agent offers many), or none when none has it.
    tool: str | None = None
    # Refuse the request as a provider does: "content_policy" or "context_length" (a 400 with
    # the provider's error code), for fallback tests.
    refuse: str | None = None
    # Speech: this many seconds of audio, past the usual cap of 20 (a long stream, for memory
    # and load tests of the audio relay).
    audio_seconds: float | None = None

    def merged(self, text: str | None) -> FaultSpec:
        """A copy with the `key=value,...` pairs of `text` applied."""
        if not text:
            return self
        return replace(self, **parse_pairs(text))


_NAMES = {f.name for f in fields(FaultSpec)}


def parse_pairs(text: str) -> dict[str, Any]:
    """`key=value,...` as FaultSpec field values (each converted and range-checked), for
    `FaultSpec(**pairs)` or `replace(spec, **pairs)`."""
    changes: dict[str, Any] = {}
    for pair in text.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key = key.strip()
        if key not in _NAMES:
            known = ", ".join(sorted(_NAMES))
            raise FaultSpecError(f"unknown mock setting {key!r}; known: {known}")
        if not sep and key not in _BOOLS:
            raise FaultSpecError(f"mock setting {key!r} needs a value")
        try:
            changes[key] = _convert(key, value.strip() if sep else "1")
        except ValueError:
            raise FaultSpecError(f"bad value {value!r} for mock setting {key!r}") from None
    return changes


def _convert(key: str, value: str) -> object:
    if key in _STRINGS:
        if not value:
            raise ValueError(value)
        return value
    if key in _FLOATS:
        number = float(value)
        if number < 0 or (key.endswith("_rate") and number > 1):
            raise ValueError(value)
        return number
    if key in _INTS:
        number = int(value)
        if number < 0:
            raise ValueError(value)
        return number
    if key in _BOOLS:
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ValueError(value)
    # error_status: one or more codes separated by '|'
    codes = tuple(int(code) for code in value.split("|"))
    if not codes or any(not 400 <= code <= 599 for code in codes):
        raise ValueError(value)
    return codes


def split_model(model: str) -> tuple[str, str | None]:
    """'gpt-4o~cut_after=3' -> ('gpt-4o', 'cut_after=3')."""
    name, sep, settings = model.partition("~")
    return name, (settings if sep else None)
