"""Relaying a server-sent-event stream from an upstream to the client as it arrives.

Events are forwarded whole: bytes after the last event boundary wait for the rest of their
event. That costs nothing in latency (an event is useless to a client until complete) and it
means that when the upstream fails mid-stream the gateway can always end with a well-formed
`data: {"error": ...}` event, which OpenAI's SDKs raise as an error, instead of a clean end
that would pass a truncated answer off as a whole one. Nothing is retried once a byte has gone
to the client.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from tollway.errors import error_payload
from tollway.proxy.connection import HttpConnection
from tollway.proxy.upstream import UpstreamConnection, UpstreamError

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


# The largest event the relay holds while waiting for its end; beyond it the stream fails
# rather than buffer without bound.
MAX_EVENT_BYTES = 8 * 1024 * 1024


class EventTooLarge(ValueError):
    pass


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


def error_event(message: str, code: str, type: str = "upstream_error") -> bytes:
    return b"data: " + orjson.dumps(error_payload(message, type=type, code=code)) + b"\n\n"


ErrorEvent = Callable[[str, str], bytes]


async def relay_sse(
    conn: HttpConnection, upstream: UpstreamConnection, error_event: ErrorEvent = error_event
) -> None:
    """Stream the upstream's events to the client, with backpressure both ways.
    `error_event(message, code)` writes a failure in the client's own format."""
    conn.start_stream(200, SSE_HEADERS, lambda message: error_event(message, "gateway_shutdown"))
    framer = SseFramer()
    try:
        while True:
            chunk = await upstream.next_chunk()
            if chunk is None:
                break
            events = framer.feed(chunk)
            if events:
                conn.write_chunk(events)
                await conn.drain()
        if framer.partial:
            conn.write_chunk(
                error_event(
                    "The upstream ended the stream in the middle of an event.",
                    "upstream_stream_truncated",
                )
            )
    except UpstreamError as exc:
        code = "upstream_timeout" if exc.kind == "timeout" else "upstream_stream_interrupted"
        conn.write_chunk(error_event(f"The upstream stream failed: {exc.message}.", code))
    except EventTooLarge as exc:
        conn.write_chunk(error_event(f"The upstream stream failed: {exc}.", "upstream_protocol"))
    finally:
        if not upstream.done:
            upstream.abort()
    conn.end_stream()
