from __future__ import annotations

import base64
import math
import struct

from tollway.testing import mock_openai as wire


def test_pieces_concatenate_to_the_text() -> None:
    words = wire.reply_words("seed", 23)
    for parts in (1, 4, 20, 50):
        pieces = wire.split_evenly(words, parts)
        assert "".join(pieces) == " ".join(words)
        assert len(pieces) == min(parts, 23)


def test_replies_are_deterministic() -> None:
    assert wire.reply_words("a", 10) == wire.reply_words("a", 10)
    assert wire.reply_words("a", 10) != wire.reply_words("b", 10)


def test_embeddings_are_unit_vectors_and_base64_is_float32() -> None:
    vector = wire.embedding_vector("text", 64)
    assert math.isclose(sum(v * v for v in vector), 1.0, abs_tol=1e-4)
    raw = base64.b64decode(wire.encode_vector(vector, "base64"))  # type: ignore[arg-type]
    assert len(raw) == 64 * 4
    assert struct.unpack("<64f", raw)[0] == __import__("pytest").approx(vector[0], abs=1e-6)


def test_prompt_tokens_count_parts_arrays() -> None:
    plain = wire.prompt_tokens([{"role": "user", "content": "abcdefgh"}])
    parts = wire.prompt_tokens(
        [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]
    )
    assert plain == parts == 4 + 2 + 3
