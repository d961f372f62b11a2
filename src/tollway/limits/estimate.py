"""What a call is reserved before it runs: its tokens and its cost, estimated from the request
alone (settled afterwards with the usage the provider reports).

Tokens: the body's size in bytes divided by 4 (about a token per 4 characters of English text
or code; the JSON around the text makes this an overestimate), with each inline base64 payload
(an image, a PDF) counted as `INLINE_TOKENS` instead of its size, plus the answer's allowance:
the request's `max_tokens` / `max_completion_tokens` / `max_output_tokens`, else the configured
default. Embeddings and token counts have no answer to reserve. This costs a few microseconds
where exact counting (tollway.llm.tokens) would cost tens to hundreds for a long conversation.
"""

from __future__ import annotations

import re

_MAX_TOKENS = re.compile(rb'"max_(?:completion_|output_)?tokens"\s*:\s*(\d{1,9})')
_INLINE = re.compile(rb'base64,[A-Za-z0-9+/=]{256,}|"data"\s*:\s*"[A-Za-z0-9+/=]{256,}')
INLINE_TOKENS = 1500
BYTES_PER_TOKEN = 4


def input_tokens(body: bytes) -> int:
    size = len(body)
    if b"base64" not in body and not (size > 4096 and b'"data"' in body):
        return size // BYTES_PER_TOKEN + 1
    inline = 0
    payloads = 0
    for found in _INLINE.finditer(body):
        inline += found.end() - found.start()
        payloads += 1
    return (size - inline) // BYTES_PER_TOKEN + 1 + payloads * INLINE_TOKENS


def output_tokens(body: bytes, default: int) -> int:
    # bytes.find is a memchr scan: much faster than letting the pattern search the body.
    at = body.find(b'"max_')
    while at >= 0:
        found = _MAX_TOKENS.match(body, at)
        if found is not None:
            return int(found.group(1))
        at = body.find(b'"max_', at + 5)
    return default


# Operations whose requests are not text to count (forms, audio, search): their token limits
# are settled with what the answer reports.
_UNCOUNTED = frozenset(
    (
        "count_tokens",
        "images",
        "speech",
        "transcription",
        "moderations",
        "rerank",
        "realtime",
        "batches",
        "files",
    )
)


def call_tokens(body: bytes, operation: str, default_output: int) -> tuple[int, int]:
    """(input, output) token estimates of a call of a model API operation."""
    if operation in _UNCOUNTED:
        return 0, 0
    if operation == "embeddings":
        return input_tokens(body), 0
    return input_tokens(body), output_tokens(body, default_output)
