"""Server-sent events, incrementally: parsing them into events (`SseParser`, for adapters that
read a provider's stream) and framing bytes at event boundaries (`SseFramer`, for relaying a
stream as it is). One bound on an event's size serves both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str | None
    data: str


# The largest event held while waiting for its end; beyond it the stream fails rather than
# buffer without bound.
MAX_EVENT_BYTES = 8 * 1024 * 1024


class EventTooLarge(ValueError):
    pass


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
            raise EventTooLarge(f"an event larger than {MAX_EVENT_BYTES} bytes")
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


class SseFramer:
    """Splits a byte stream after its last complete event (a blank line ends an event)."""

    __slots__ = ("tail",)

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: bytes) -> bytes:
        """Append `data`; return the bytes that complete events, keep the rest."""
        buf = self.tail + data if self.tail else data
        if buf.endswith(b"\n\n"):
            # The usual case: the upstream flushed whole events.
            self.tail = b""
            return buf
        end = -1
        i = buf.rfind(b"\n\n")
        if i >= 0:
            end = i + 2
        i = buf.rfind(b"\n\r\n")
        if i >= 0 and i + 3 > end:
            end = i + 3
        i = buf.rfind(b"\r\r")
        if i >= 0 and i + 2 > end:
            end = i + 2
        if end < 0:
            self.tail = buf
            out = b""
        else:
            self.tail = buf[end:]
            out = buf[:end]
        if len(self.tail) > MAX_EVENT_BYTES:
            raise EventTooLarge(f"an event larger than {MAX_EVENT_BYTES} bytes")
        return out

    @property
    def partial(self) -> bool:
        """Whether an event was begun and not finished."""
        return bool(self.tail.strip())
