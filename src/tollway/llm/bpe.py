"""Counting an encoding's tokens from a compact copy of its table.

tiktoken's compiled encoder holds its table three times over as Rust maps of small heap
vectors: about 44 MB in every worker for o200k_base, built in ~0.7 s on the event loop the
first time a call's usage has to be counted. Counting needs only ranks, so the table is kept
here as three flat arrays instead (every token's bytes in one `bytes`, their offsets, and an
open-addressing index keyed by Python's own hash of the token): ~5 MB for o200k_base.

The count is the one tiktoken gives: the text is split by the encoding's own pattern (run by
the `regex` module, as tiktoken's reference implementation does), a piece that is a token
counts one, and any other is merged byte pair by byte pair, lowest rank first, as tiktoken's
`_byte_pair_merge` does. tests/unit/llm/test_bpe.py holds the two to the same counts.
"""

from __future__ import annotations

import binascii
import io
from array import array
from collections.abc import Callable

import regex

# Counts of recent pieces: most text repeats its words, and a dict lookup of a `str` (its hash
# cached) is far cheaper than encoding and looking up the piece again. Cleared when full.
_KNOWN_PIECES = 8192
_EMPTY = 0xFFFFFFFF
_NONE = 1 << 62  # no rank: a pair that is no token


class BpeTable:
    """One encoding's ranks, compact, and the pattern that splits text into its pieces."""

    __slots__ = ("_blob", "_known", "_mask", "_offsets", "_pattern", "_slots")

    def __init__(self, pattern: str) -> None:
        self._pattern = regex.compile(pattern)
        self._known: dict[str, int] = {}
        self._blob = b""
        # Token `rank`'s bytes are `_blob[_offsets[rank]:_offsets[rank + 1]]`.
        self._offsets = array("I", [0])
        self._slots = array("I")
        self._mask = 0

    @classmethod
    def from_published(cls, published: bytes, pattern: str) -> BpeTable:
        """The table of a `.tiktoken` file (lines of `base64-token rank`, ranks 0, 1, 2... in
        order, as OpenAI publishes them), read a line at a time, so that no Python object per
        token is left behind: not even the list of its lines."""
        table = cls(pattern)
        size = 1
        while size < published.count(b"\n") * 5 // 2:
            size <<= 1
        mask = size - 1
        slots = array("I", [_EMPTY]) * size
        offsets = table._offsets
        blob = bytearray()
        decode = binascii.a2b_base64
        for rank, line in enumerate(io.BytesIO(published)):
            token, written = line.split()
            if int(written) != rank:
                raise ValueError(f"rank {int(written)} out of order (expected {rank})")
            token = decode(token)
            at = hash(token) & mask
            while slots[at] != _EMPTY:
                at = (at + 1) & mask
            slots[at] = rank
            blob += token
            offsets.append(len(blob))
        table._blob = bytes(blob)
        table._slots = slots
        table._mask = mask
        return table

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def rank(self, piece: bytes) -> int:
        """The rank of `piece`, or -1 when it is no token."""
        slots = self._slots
        mask = self._mask
        offsets = self._offsets
        size = len(piece)
        at = hash(piece) & mask
        rank = slots[at]
        while rank != _EMPTY:
            start = offsets[rank]
            if offsets[rank + 1] - start == size and self._blob.startswith(piece, start):
                return int(rank)
            at = (at + 1) & mask
            rank = slots[at]
        return -1

    def count(self, text: str) -> int:
        """The number of tokens `text` encodes to, special-token text counted as text."""
        try:
            return self._count(text)
        except UnicodeEncodeError:
            # A lone surrogate: tiktoken encodes the text with it replaced, so this counts that.
            return self._count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))

    def _count(self, text: str) -> int:
        known = self._known
        total = 0
        for piece in self._pattern.findall(text):
            counted = known.get(piece)
            if counted is None:
                counted = self._count_piece(piece.encode())
                if len(known) >= _KNOWN_PIECES:
                    known.clear()
                known[piece] = counted
            total += counted
        return total

    def _count_piece(self, piece: bytes) -> int:
        if len(piece) == 1 or self.rank(piece) >= 0:
            return 1
        return len(self._merged(piece)) - 1

    def _merged(self, piece: bytes) -> list[int]:
        """The boundaries left after merging `piece`'s byte pairs lowest rank first; the
        pieces between them are its tokens (tiktoken's `_byte_pair_merge`). `ranks[i]` is the
        rank of the bytes from `bounds[i]` to `bounds[i + 2]`, or `_NONE`."""
        rank = self.rank
        bounds = list(range(len(piece) + 1))
        ranks = [rank(piece[i : i + 2]) for i in range(len(piece) - 1)]
        ranks = [_NONE if found < 0 else found for found in ranks] + [_NONE, _NONE]
        while True:
            lowest = _NONE
            at = -1
            for i in range(len(ranks) - 1):
                if ranks[i] < lowest:
                    lowest = ranks[i]
                    at = i
            if at < 0:
                return bounds
            # Parts `at` and `at + 1` merge: the pairs that start at `at - 1` and `at` now
            # span one part more.
            last = len(bounds)
            if at > 0:
                ranks[at - 1] = _span_rank(rank, piece, bounds, at - 1, last)
            ranks[at] = _span_rank(rank, piece, bounds, at, last)
            del bounds[at + 1]
            del ranks[at + 1]


def _span_rank(
    rank: Callable[[bytes], int], piece: bytes, bounds: list[int], i: int, last: int
) -> int:
    """The rank of the bytes from `bounds[i]` to `bounds[i + 3]`, or `_NONE`."""
    if i + 3 >= last:
        return _NONE
    found = rank(piece[bounds[i] : bounds[i + 3]])
    return _NONE if found < 0 else found
