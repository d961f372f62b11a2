from __future__ import annotations

import pytest

from tollway.llm import sse
from tollway.llm.sse import SseFramer


def test_whole_events_pass_at_once() -> None:
    framer = SseFramer()
    assert framer.feed(b"data: 1\n\ndata: 2\n\n") == b"data: 1\n\ndata: 2\n\n"
    assert not framer.partial


@pytest.mark.parametrize("splits", [1, 2, 3, 5, 7])
def test_split_events_are_reassembled_at_boundaries(splits: int) -> None:
    stream = b"data: one\n\nevent: x\ndata: two\r\n\r\ndata: three\r\rdata: [DONE]\n\n"
    framer = SseFramer()
    out = []
    for i in range(0, len(stream), splits):
        piece = framer.feed(stream[i : i + splits])
        if piece:
            # Every forwarded piece ends on an event boundary.
            assert piece.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
            out.append(piece)
    assert b"".join(out) == stream
    assert not framer.partial


def test_partial_event_is_held_and_reported() -> None:
    framer = SseFramer()
    assert framer.feed(b'data: 1\n\ndata: {"half') == b"data: 1\n\n"
    assert framer.partial


def test_an_event_that_never_ends_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 1000)
    framer = SseFramer()
    assert framer.feed(b"data: ok\n\n" + b"x" * 900) == b"data: ok\n\n"
    with pytest.raises(sse.EventTooLarge):
        framer.feed(b"x" * 200)
