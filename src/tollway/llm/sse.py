"""Parsing server-sent events from bytes, incrementally."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str | None
    data: str


MAX_EVENT_BYTES = 8 * 1024 * 1024


class SseParser:
    """Feed bytes, get whole events. Handles LF, CRLF and CR line ends and multi-line data."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk
        events: list[Event] = []
        while True:
            line, sep = _split_line(buf)
            if sep is None:
                break
            buf = buf[len(line) + len(sep) :]
            if line == b"":
                if self._data or self._event is not None:
                    events.append(Event(self._event, "\n".join(self._data)))
                self._event, self._data = None, []
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value.decode("utf-8"))
            elif name == b"event":
                self._event = value.decode("utf-8")
        self._buf = buf
        if len(buf) + sum(len(d) for d in self._data) > MAX_EVENT_BYTES:
            raise ValueError(f"an event larger than {MAX_EVENT_BYTES} bytes")
        return events

    @property
    def pending(self) -> bool:
        """Whether an event has begun and not ended."""
        return bool(self._buf.strip() or self._data or self._event)


def _split_line(buf: bytes) -> tuple[bytes, bytes | None]:
    lf = buf.find(b"\n")
    cr = buf.find(b"\r")
    if cr == -1 and lf == -1:
        return buf, None
    if cr == -1 or (lf != -1 and lf < cr):
        return buf[:lf], b"\n"
    if cr + 1 < len(buf):
        return buf[:cr], (b"\r\n" if buf[cr + 1 : cr + 2] == b"\n" else b"\r")
    return buf, None  # a CR at the end may be the first half of CRLF


def encode(data: bytes, event: str | None = None) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
