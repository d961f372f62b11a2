from __future__ import annotations

import pytest
from botocore.eventstream import EventStreamBuffer

from tollway.providers.aws_eventstream import EventStreamDecoder, EventStreamError, encode

HEADERS = {
    ":event-type": "contentBlockDelta",
    ":content-type": "application/json",
    ":message-type": "event",
}


def test_round_trip_and_botocore_agrees() -> None:
    frames = [encode(HEADERS, b'{"n": %d}' % i) for i in range(3)]
    stream = b"".join(frames)
    theirs = EventStreamBuffer()
    theirs.add_data(stream)
    assert [(m.headers, m.payload) for m in theirs] == [
        (HEADERS, b'{"n": %d}' % i) for i in range(3)
    ]
    decoder = EventStreamDecoder()
    ours = []
    for i in range(0, len(stream), 5):
        ours.extend(decoder.feed(stream[i : i + 5]))
    assert [(m.headers, m.payload) for m in ours] == [(HEADERS, b'{"n": %d}' % i) for i in range(3)]
    assert not decoder.pending


@pytest.mark.parametrize("where", [9, -2])
def test_corruption_is_detected(where: int) -> None:
    frame = bytearray(encode(HEADERS, b"{}"))
    frame[where] ^= 0xFF
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(bytes(frame))
