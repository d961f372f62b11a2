"""OpenAI's audio API as the mock provider speaks it: `POST /audio/speech` (JSON; audio bytes,
or SSE with `stream_format: "sse"`), `POST /audio/transcriptions` and `/audio/translations`
(multipart forms).

Speech lasts 60 ms a character of `input` (divided by `speed`, at most 20 s) and goes out as
a chunked stream of `chunks` pieces, `chunk_delay_ms` apart, as if produced on the fly: wav is
a valid RIFF file of 24 kHz 16-bit mono silence, pcm the same samples bare, mp3 silent MPEG-2
layer III frames; opus, aac and flac are deterministic bytes after their format's magic header.

A transcript lasts as long as the upload: a WAV file's header gives its duration, any other
file counts 16,000 bytes a second. Its text is the `prompt` field when one is given, else
"mock transcript of N.N seconds of audio" ("mock translation ..." for translations).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.testing import mock_openai as wire
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_forms import (
    MediaContext,
    files,
    float_field,
    missing,
    param_error,
    send_body,
    split_bytes,
    sse_event,
    text_field,
    truthy,
)

RATE = 24_000
MS_PER_CHAR = 60
MAX_SECONDS = 20.0
MAX_INPUT = 4096
CONTENT_TYPES = {
    "mp3": b"audio/mpeg",
    "opus": b"audio/opus",
    "aac": b"audio/aac",
    "flac": b"audio/flac",
    "wav": b"audio/wav",
    "pcm": b"audio/pcm",
}
# Bytes a second of each compressed format (a plausible bitrate).
_BYTE_RATES = {"opus": 4_000, "aac": 8_000, "flac": 24_000}
_VOICES = frozenset(
    "alloy ash ballad coral echo fable onyx nova sage shimmer verse marin cedar".split()
)
# MPEG-2 layer III, 64 kbit/s, 24 kHz, mono: 576 samples (24 ms) in 192 bytes a frame.
_MP3_FRAME = b"\xff\xf3\x84\xc4" + bytes(188)
_MP3_FRAME_S = 576 / RATE


def speech_seconds(text: str, speed: float) -> float:
    return min(len(text) * MS_PER_CHAR / 1000 / speed, MAX_SECONDS)


def wav_header(data_bytes: int, rate: int = RATE) -> bytes:
    """A 44-byte RIFF/WAVE header for 16-bit mono PCM."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def audio_bytes(fmt: str, seconds: float) -> bytes:
    samples = int(seconds * RATE)
    if fmt in ("wav", "pcm"):
        pcm = bytes(samples * 2)
        return wav_header(len(pcm)) + pcm if fmt == "wav" else pcm
    if fmt == "mp3":
        return b"ID3\x04\x00\x00\x00\x00\x00\x00" + _MP3_FRAME * max(
            1, math.ceil(seconds / _MP3_FRAME_S)
        )
    size = max(64, int(seconds * _BYTE_RATES[fmt]))
    if fmt == "flac":
        head = b"fLaC\x80\x00\x00\x22" + bytes(34)
    elif fmt == "opus":
        head = b"OggS\x00\x02" + bytes(20) + b"OpusHead\x01\x01"
    else:  # aac: an ADTS header (LC profile, 24 kHz, mono)
        head = b"\xff\xf1\x58\x40\x00\x1f\xfc"
    body = bytes((i * 31 + 7) & 0xFF for i in range(size - len(head)))
    return head + body


def speech(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    text = body.get("input")
    if text is None:
        conn.send_json(400, missing("input"))
        return None
    if not isinstance(text, str) or not text:
        conn.send_json(400, param_error("Invalid 'input': expected a non-empty string.", "input"))
        return None
    if len(text) > MAX_INPUT:
        conn.send_json(
            400,
            param_error(
                f"Invalid 'input': string too long. Expected a string with maximum length "
                f"{MAX_INPUT}, but got a string with length {len(text)} instead.",
                "input",
                "string_above_max_length",
            ),
        )
        return None
    voice = body.get("voice")
    if voice is None:
        conn.send_json(400, missing("voice"))
        return None
    if not (isinstance(voice, str) and voice in _VOICES) and not (
        isinstance(voice, dict) and isinstance(voice.get("id"), str)
    ):
        conn.send_json(400, param_error(f"Invalid 'voice': {voice!r}.", "voice", "invalid_value"))
        return None
    fmt = body.get("response_format") or "mp3"
    if fmt not in CONTENT_TYPES:
        conn.send_json(
            400,
            param_error(f"Invalid 'response_format': {fmt!r}.", "response_format", "invalid_value"),
        )
        return None
    speed = float_field(body, "speed", 1.0)
    if speed is None or not 0.25 <= speed <= 4.0:
        conn.send_json(
            400, param_error("Invalid 'speed': expected 0.25 to 4.0.", "speed", "invalid_value")
        )
        return None
    stream_format = body.get("stream_format") or "audio"
    if stream_format not in ("audio", "sse"):
        conn.send_json(
            400, param_error(f"Invalid 'stream_format': {stream_format!r}.", "stream_format")
        )
        return None
    if stream_format == "sse" and model.startswith("tts-1"):
        conn.send_json(
            400, param_error(f"stream_format 'sse' is not supported for {model}.", "stream_format")
        )
        return None
    seconds = spec.audio_seconds or speech_seconds(text, speed)
    pieces = split_bytes(audio_bytes(fmt, seconds), spec.chunks)
    sid = f"speech-{ctx.next_id()}"
    if stream_format == "audio":
        return ctx.delivery.stream(conn, sid, pieces, spec, b"", CONTENT_TYPES[fmt])
    prompt_tokens = wire.count_tokens(text)
    output = math.ceil(seconds * 20)
    events = [
        sse_event("speech.audio.delta", {"audio": base64.b64encode(p).decode()}) for p in pieces
    ]
    events.append(
        sse_event(
            "speech.audio.done",
            {
                "usage": {
                    "input_tokens": prompt_tokens,
                    "output_tokens": output,
                    "total_tokens": prompt_tokens + output,
                }
            },
        )
    )
    return ctx.delivery.stream(conn, sid, events, spec, wire.stream_error_event())


# -- transcriptions and translations -------------------------------------------------------------


def audio_seconds(data: bytes | memoryview) -> float:
    """A WAV file's duration from its header (fmt byte rate, data size); else 16 kB a second."""
    raw = bytes(data[:4096])
    if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
        at, byte_rate = 12, 0
        while at + 8 <= len(raw):
            kind, size = raw[at : at + 4], struct.unpack("<I", raw[at + 4 : at + 8])[0]
            if kind == b"fmt " and at + 20 <= len(raw):
                byte_rate = struct.unpack("<I", raw[at + 16 : at + 20])[0]
            elif kind == b"data" and byte_rate:
                size = min(size, len(data) - at - 8)
                return float(size / byte_rate)
            at += 8 + size + (size & 1)
    return len(data) / 16_000


_WHISPER_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def _token_style(model: str) -> bool:
    """gpt-4o-transcribe and its kin bill tokens; whisper bills seconds."""
    return "transcribe" in model


def _segments(text: str, seconds: float) -> list[tuple[float, float, str]]:
    words = text.split()
    groups = [words[i : i + 8] for i in range(0, len(words), 8)] or [[]]
    step = seconds / len(groups)
    return [
        (round(i * step, 2), round((i + 1) * step, 2), " ".join(group))
        for i, group in enumerate(groups)
    ]


def _clock(at: float, sep: str) -> str:
    ms = round(at * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def subtitles(text: str, seconds: float, vtt: bool) -> str:
    out = ["WEBVTT\n"] if vtt else []
    for i, (start, end, line) in enumerate(_segments(text, seconds), 1):
        sep = "." if vtt else ","
        cue = f"{_clock(start, sep)} --> {_clock(end, sep)}\n{line}\n"
        out.append(cue if vtt else f"{i}\n{cue}")
    return "\n".join(out) + "\n"


def _verbose(
    task: str, text: str, seconds: float, language: str, granularities: list[str]
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "task": task,
        "language": language,
        "duration": round(seconds, 2),
        "text": text,
    }
    if not granularities or "segment" in granularities:
        answer["segments"] = [
            {
                "id": i,
                "seek": 0,
                "start": start,
                "end": end,
                "text": " " + line,
                "tokens": [50364 + j for j in range(wire.count_tokens(line))],
                "temperature": 0.0,
                "avg_logprob": -0.25,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
            }
            for i, (start, end, line) in enumerate(_segments(text, seconds))
        ]
    if "word" in granularities:
        words = text.split()
        step = seconds / max(1, len(words))
        answer["words"] = [
            {"word": w, "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
            for i, w in enumerate(words)
        ]
    answer["usage"] = {"type": "duration", "seconds": math.ceil(seconds)}
    return answer


def _usage(model: str, seconds: float, prompt: str | None, text: str) -> dict[str, Any]:
    if not _token_style(model):
        return {"type": "duration", "seconds": math.ceil(seconds)}
    audio = math.ceil(seconds * 10)
    prompt_tokens = wire.count_tokens(prompt or "")
    output = wire.count_tokens(text)
    return {
        "type": "tokens",
        "input_tokens": audio + prompt_tokens,
        "output_tokens": output,
        "total_tokens": audio + prompt_tokens + output,
        "input_token_details": {"audio_tokens": audio, "text_tokens": prompt_tokens},
    }


def _listen(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
    task: str,
) -> Awaitable[None] | None:
    uploads = files(request, "file")
    if not uploads:
        conn.send_json(400, missing("file"))
        return None
    if task == "translate" and _token_style(model):
        conn.send_json(
            400,
            param_error(f"Model {model} does not support translations.", "model", "invalid_value"),
        )
        return None
    fmt = text_field(body, "response_format") or "json"
    allowed = ("json", "text") if _token_style(model) else _WHISPER_FORMATS
    if fmt not in allowed:
        conn.send_json(
            400,
            param_error(
                f"response_format '{fmt}' is not compatible with model '{model}'.",
                "response_format",
                "unsupported_value",
            ),
        )
        return None
    temperature = float_field(body, "temperature", 0.0)
    if temperature is None or not 0 <= temperature <= 1:
        conn.send_json(400, param_error("Invalid 'temperature'.", "temperature", "invalid_value"))
        return None
    upload = uploads[0]
    seconds = audio_seconds(memoryview(request.body)[upload.start : upload.end])
    prompt = text_field(body, "prompt")
    noun = "transcript" if task == "transcribe" else "translation"
    text = (
        prompt.strip()
        if prompt and prompt.strip()
        else f"mock {noun} of {seconds:.1f} seconds of audio"
    )
    language = "english" if task == "translate" else (text_field(body, "language") or "english")
    if fmt == "text":
        return send_body(
            ctx.delivery, conn, (text + "\n").encode(), spec, b"text/plain; charset=utf-8"
        )
    if fmt in ("srt", "vtt"):
        payload = subtitles(text, seconds, fmt == "vtt").encode()
        return send_body(ctx.delivery, conn, payload, spec, b"text/plain; charset=utf-8")
    if fmt == "verbose_json":
        granularities = body.get("timestamp_granularities[]") or body.get("timestamp_granularities")
        if isinstance(granularities, str):
            granularities = [granularities]
        answer = _verbose(task, text, seconds, language, list(granularities or []))
        return send_body(ctx.delivery, conn, orjson.dumps(answer), spec)
    usage = _usage(model, seconds, prompt, text)
    if truthy(body, "stream") and _token_style(model):
        events = [
            sse_event("transcript.text.delta", {"delta": piece})
            for piece in wire.split_evenly(text.split(" "), spec.chunks)
        ]
        events.append(sse_event("transcript.text.done", {"text": text, "usage": usage}))
        sid = f"transcript-{ctx.next_id()}"
        return ctx.delivery.stream(conn, sid, events, spec, wire.stream_error_event())
    return send_body(ctx.delivery, conn, orjson.dumps({"text": text, "usage": usage}), spec)


def transcriptions(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    return _listen(ctx, conn, request, body, model, spec, "transcribe")


def translations(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    return _listen(ctx, conn, request, body, model, spec, "translate")
