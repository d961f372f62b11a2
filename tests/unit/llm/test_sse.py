from __future__ import annotations

from tollway.llm.sse import Event, SseParser


def test_events_across_splits_and_line_endings() -> None:
    # A CR at the very end could be half of a CRLF: the comment after it settles that.
    stream = b": comment\nevent: a\ndata: 1\ndata: 2\n\ndata: x\r\n\r\ndata: y\r\r: more\n"
    for size in (1, 3, 64):
        parser = SseParser()
        events = []
        for i in range(0, len(stream), size):
            events.extend(parser.feed(stream[i : i + size]))
        assert events == [Event("a", "1\n2"), Event(None, "x"), Event(None, "y")]


def test_pending_until_the_blank_line() -> None:
    parser = SseParser()
    assert parser.feed(b"data: half") == []
    assert parser.pending


def test_an_event_that_never_ends_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from tollway.llm import sse

    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 1000)
    parser = SseParser()
    with pytest.raises(ValueError, match="larger than 1000"):
        parser.feed(b"data: " + b"x" * 2000)
