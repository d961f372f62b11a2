"""OpenAI's wire format as the mock provider writes it: bodies, stream chunks, usage, errors.

Pure functions, no I/O. Content is deterministic (the same request gives the same words) and
usage is counted the same way every time, so tests can assert exact values.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from typing import Any

import orjson

_VOCABULARY = tuple(
    "the gateway routes each request to a model and streams tokens back while counting "
    "usage latency cost budget limit policy tenant key route provider cache context window "
    "prompt answer token chunk event header body status retry fallback balance deploy "
    "observe record trace metric queue batch worker socket buffer parser signal drain "
    "health ready mock".split()
)

FINGERPRINT = "fp_mock"


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a parts array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def count_tokens(text: str) -> int:
    """A stable stand-in for a tokenizer: about four characters a token, as in English."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def prompt_tokens(messages: list[Any]) -> int:
    # Chat formats add a few tokens of framing per message.
    return (
        sum(
            4 + count_tokens(message_text(m.get("content")) if isinstance(m, dict) else "")
            for m in messages
        )
        + 3
    )


def reply_words(seed_text: str, count: int) -> list[str]:
    seed = zlib.crc32(seed_text.encode())
    n = len(_VOCABULARY)
    return [_VOCABULARY[(seed + i * 7) % n] for i in range(count)]


def split_evenly(words: list[str], parts: int) -> list[str]:
    """Join words into `parts` pieces (fewer if there are fewer words), keeping spaces, so
    that the pieces concatenate to the whole text."""
    if not words:
        return []
    parts = max(1, min(parts, len(words)))
    size, extra = divmod(len(words), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        piece = " ".join(words[start:end])
        pieces.append(piece if start == 0 else " " + piece)
        start = end
    return pieces


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    cid: str,
    created: int,
    model: str,
    message: dict[str, Any],
    finish: str,
    n: int,
    use: dict[str, Any],
) -> bytes:
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
        for i in range(n)
    ]
    return orjson.dumps(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": use,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def chat_chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None,
    with_usage_field: bool,
) -> bytes:
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage_field:
        chunk["usage"] = None
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def chat_usage_chunk(cid: str, created: int, model: str, use: dict[str, Any]) -> bytes:
    """The final chunk of `stream_options.include_usage`: no choices, only usage."""
    return (
        b"data: "
        + orjson.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
                "choices": [],
                "usage": use,
            }
        )
        + b"\n\n"
    )


def text_completion(
    cid: str,
    created: int,
    model: str,
    text: str | None,
    finish: str | None,
    use: dict[str, Any] | None,
    stream: bool,
) -> dict[str, Any]:
    """A `text_completion` body or stream chunk; with `text` None, a chunk with no choices
    (the usage chunk)."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": []
        if text is None
        else [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
    }
    if use is not None or not stream:
        body["usage"] = use
    return body


DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for a text."""
    seed = zlib.crc32(text.encode()) or 1
    values = []
    for i in range(dims):
        seed = (seed * 1103515245 + 12345 + i) & 0x7FFFFFFF
        values.append(seed / 0x7FFFFFFF - 0.5)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings(model: str, body: dict[str, Any], default_dims: int) -> dict[str, Any] | str:
    """The answer to `POST /v1/embeddings`, or what is wrong with the request: one vector per
    input (a string, a token array, or an array of either), in `encoding_format`."""
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        return "'input' must be a string or a non-empty array"
    dims = body.get("dimensions") or default_dims
    encoding = body.get("encoding_format") or "float"
    data, tokens = [], 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(str(t) for t in item)
        tokens += count_tokens(text) if isinstance(item, str) else len(item)
        data.append(
            {
                "object": "embedding",
                "index": i,
                "embedding": encode_vector(embedding_vector(text, dims), encoding),
            }
        )
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


_ERRORS = {
    400: (
        "invalid_request_error",
        "invalid_request",
        "The mock provider was asked to fail with 400.",
    ),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (mock)."),
    500: ("server_error", None, "The server had an error while processing your request (mock)."),
    502: ("server_error", None, "Bad gateway (mock)."),
    503: (
        "server_error",
        None,
        "The engine is currently overloaded, please try again later (mock).",
    ),
}


def stream_error_event(
    message: str = "The server had an error while processing your request (mock, mid-stream).",
) -> bytes:
    """What OpenAI sends when a stream fails after it started."""
    return sse({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def error(status: int, message: str | None = None) -> bytes:
    kind, code, default = _ERRORS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            None,
            f"Mock error {status}.",
        ),
    )
    return orjson.dumps(
        {"error": {"message": message or default, "type": kind, "param": None, "code": code}}
    )
