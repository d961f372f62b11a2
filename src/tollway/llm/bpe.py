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
import heapq
import io
from array import array

import regex

# Counts of recent pieces: most text repeats its words, and a dict lookup of a `str` (its hash
# cached) is far cheaper than encoding and looking up the piece again. Cleared when full.
_KNOWN_PIECES = 8192
_KNOWN_LENGTH = 64  # longer pieces are rare and would make the memory's size unbounded
# Bytes of pieces that need merging that one count merges exactly (~7 us a byte at worst, for a
# run of one letter); past it, such pieces are estimated. Real text needs ~10-13% of its bytes
# merged (this project's docs and code), and repeated pieces are remembered: any prompt under
# ~1 MB is counted exactly, and no text holds a worker's loop for more than about a second.
_MERGE_BUDGET = 128 * 1024
# A piece longer than this (~0.1 s to merge) is estimated from its first `_SAMPLE` bytes.
_LONGEST_PIECE = 16 * 1024
_SAMPLE = 4096
_EMPTY = 0xFFFFFFFF


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
        # Bytes of pieces merged pair by pair, and the tokens they gave: past `_MERGE_BUDGET`,
        # the rest of such pieces are estimated at the same rate (see the module's notes).
        merged = merged_tokens = 0
        for piece in self._pattern.findall(text):
            counted = known.get(piece)
            if counted is None:
                encoded = piece.encode()
                if len(encoded) > _LONGEST_PIECE or (merged > _MERGE_BUDGET and len(encoded) > 1):
                    total += self._estimate(encoded, merged, merged_tokens)
                    continue
                counted = self._count_piece(encoded)
                if counted > 1:
                    merged += len(encoded)
                    merged_tokens += counted
                if len(piece) <= _KNOWN_LENGTH:
                    if len(known) >= _KNOWN_PIECES:
                        known.clear()
                    known[piece] = counted
            total += counted
        return total

    def _estimate(self, piece: bytes, merged: int, merged_tokens: int) -> int:
        """The tokens of a piece past the limits: one when it is a token, else its bytes at
        the rate of the pieces merged so far, or of its own first `_SAMPLE` bytes when it is
        too long to merge whole."""
        if self.rank(piece) >= 0:
            return 1
        if len(piece) > _LONGEST_PIECE or not merged:
            merged, merged_tokens = _SAMPLE, self._count_piece(piece[:_SAMPLE])
        return -(-len(piece) * merged_tokens // merged)

    def _count_piece(self, piece: bytes) -> int:
        """The tokens of one piece: one when it is a token, else what is left after merging
        its byte pairs lowest rank first, the leftmost first among equals (tiktoken's
        `_byte_pair_merge`). The pairs wait in a heap, so that a long piece (a run of one
        letter, a long word without spaces) takes n log n steps, not n squared."""
        rank = self.rank
        size = len(piece)
        if size == 1 or rank(piece) >= 0:
            return 1
        # Part k starts at byte k and runs to `following[k]`; `pair[k]` is the rank of part k
        # merged with the part after it, -1 when that is no token or part k was merged away.
        following = list(range(1, size + 2))
        preceding = list(range(-1, size))
        pair = [rank(piece[k : k + 2]) for k in range(size - 1)] + [-1, -1]
        waiting = [(found, k) for k, found in enumerate(pair) if found >= 0]
        heapq.heapify(waiting)
        parts = size
        while waiting:
            found, k = heapq.heappop(waiting)
            if pair[k] != found:
                continue  # a pair since changed (its span grew: another rank) or merged away
            merged = following[k]
            after = following[merged]
            following[k] = after
            preceding[after] = k
            pair[merged] = -1
            parts -= 1
            for start in (k, preceding[k]):
                if start < 0:
                    continue
                end = following[following[start]] if following[start] < size else size + 1
                found = rank(piece[start:end]) if end <= size else -1
                pair[start] = found
                if found >= 0:
                    heapq.heappush(waiting, (found, start))
        return parts
