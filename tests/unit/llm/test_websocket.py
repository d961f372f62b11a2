"""The WebSocket message reader: messages kept or skipped by their first bytes, in any
fragmentation and any split of the byte stream; control frames; malformed framing refused."""

from __future__ import annotations

import random

import pytest

from tollway.llm.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    FrameError,
    MessageReader,
    accept_key,
    frame,
)


def done(opcode: int, head: bytes) -> bool:
    return opcode == TEXT and b'"response.done"' in head


def test_the_handshake_accept_key_is_rfc_6455s() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("masked", [False, True])
def test_wanted_messages_come_whole_whatever_the_split(masked: bool) -> None:
    usage = b'{"type":"response.done","response":{"usage":{"total_tokens":7}}}'
    audio = b'{"type":"response.output_audio.delta","delta":"' + b"A" * 300_000 + b'"}'
    long_done = b'{"type":"response.done","pad":"' + b"x" * 70_000 + b'"}'
    stream = b"".join(
        [
            frame(TEXT, audio, mask=masked),
            frame(PING, b"hi", mask=masked),
            frame(TEXT, usage, mask=masked),
            frame(BINARY, bytes(range(256)) * 3, mask=masked),
            # One message in three fragments, a ping between them.
            frame(TEXT, long_done[:10], mask=masked, fin=False),
            frame(CONTINUATION, long_done[10:40_000], mask=masked, fin=False),
            frame(PING, b"", mask=masked),
            frame(CONTINUATION, long_done[40_000:], mask=masked),
            frame(TEXT, b"", mask=masked),
            frame(CLOSE, b"\x03\xe8bye", mask=masked),
        ]
    )
    rng = random.Random(7)
    for _ in range(20):
        reader = MessageReader(done)
        got = []
        at = 0
        while at < len(stream):
            step = rng.choice([1, 2, 3, 7, 100, 4096, 70_000])
            got += reader.feed(stream[at : at + step])
            at += step
        assert got == [
            (PING, b"hi"),
            (TEXT, usage),
            (PING, b""),
            (TEXT, long_done),
            (CLOSE, b"\x03\xe8bye"),
        ]


def test_a_kept_message_over_the_limit_is_dropped_not_held() -> None:
    reader = MessageReader(done, max_message=1000)
    big = b'{"type":"response.done","pad":"' + b"x" * 5000 + b'"}'
    assert reader.feed(frame(TEXT, big)) == []
    assert reader.feed(frame(TEXT, b'{"type":"response.done"}')) == [
        (TEXT, b'{"type":"response.done"}')
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (bytes([0x80 | 0x40 | TEXT, 0]), "reserved bits"),
        (bytes([CONTINUATION | 0x80, 0]), "no message to continue"),
        (bytes([PING, 0]), "control frame"),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "new message began"),
    ],
)
def test_malformed_framing_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(FrameError, match=problem):
        MessageReader(done).feed(data)
