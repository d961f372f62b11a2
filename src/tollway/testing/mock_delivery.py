"""How the mock provider's answers go out on the connection, with the transport faults a
`FaultSpec` asks for: a slow first byte, an error status, a body or stream cut short, the
provider's own mid-stream error event, or a connection reset.

Each recent stream keeps a `StreamRecord` (its state and what was sent) for `GET /_mock/stats`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import ClientGone
from tollway.testing.mock_faults import FaultSpec

SSE_CONTENT_TYPE = b"text/event-stream; charset=utf-8"
# How many finished streams /_mock/stats remembers.
_STREAMS_KEPT = 100


class StreamRecord:
    """One stream's progress: active, then completed, errored, cut or cancelled."""

    __slots__ = ("bytes_sent", "chunks_sent", "id", "state")

    def __init__(self, sid: str) -> None:
        self.id = sid
        self.state = "active"
        self.bytes_sent = 0
        self.chunks_sent = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "bytes_sent": self.bytes_sent,
            "chunks_sent": self.chunks_sent,
        }


class Delivery:
    """Writes answers (bodies, streams, errors) and remembers what happened to them."""

    def __init__(self) -> None:
        self.streams: OrderedDict[str, StreamRecord] = OrderedDict()
        # Delayed answers whose caller hung up before they were sent.
        self.abandoned = 0

    def clear(self) -> None:
        self.streams.clear()
        self.abandoned = 0

    def failure(
        self,
        conn: HttpConnection,
        status: int,
        spec: FaultSpec,
        error: Callable[[int], bytes],
        headers: list[tuple[bytes, bytes]],
    ) -> Awaitable[None] | None:
        """An injected error status, after the spec's latency; statuses that invite a retry
        carry `retry-after`."""
        if status in (429, 503, 529):
            headers = [*headers, (b"retry-after", b"1")]
        if not spec.latency_ms:
            conn.send_json(status, error(status), headers)
            return None

        async def later() -> None:
            await asyncio.sleep(spec.latency_ms / 1000)
            conn.send_json(status, error(status), headers)

        return later()

    def body(self, conn: HttpConnection, payload: bytes, spec: FaultSpec) -> Awaitable[None] | None:
        """A 200 JSON body: at once when no fault applies, else from a task."""
        if not spec.latency_ms and spec.cut_after is None:
            conn.send_json(200, payload)
            return None
        return self._body_later(conn, payload, spec)

    async def _body_later(self, conn: HttpConnection, payload: bytes, spec: FaultSpec) -> None:
        if spec.latency_ms:
            try:
                await asyncio.sleep(spec.latency_ms / 1000)
            except asyncio.CancelledError:
                self.abandoned += 1
                raise
        if spec.cut_after is not None:
            # Promise the whole body, send half, then drop the connection.
            assert conn.transport is not None
            conn.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload[: len(payload) // 2])
            )
            await asyncio.sleep(0.05)
            conn.abort()
            return
        conn.send_json(200, payload)

    async def stream(
        self,
        conn: HttpConnection,
        sid: str,
        events: list[bytes],
        spec: FaultSpec,
        error_event: bytes,
        content_type: bytes = SSE_CONTENT_TYPE,
    ) -> None:
        """Send `events` as a chunked 200 stream, honouring latency, chunk delay, a cut
        (`cut_after`) and a provider error (`stream_error_after`)."""
        record = StreamRecord(sid)
        self.streams[sid] = record
        while len(self.streams) > _STREAMS_KEPT:
            self.streams.popitem(last=False)
        try:
            if spec.latency_ms:
                await asyncio.sleep(spec.latency_ms / 1000)
            conn.start_stream(
                200, [(b"content-type", content_type), (b"cache-control", b"no-cache")]
            )
            delay = spec.chunk_delay_ms / 1000
            for i, event in enumerate(events):
                if spec.stream_error_after is not None and i >= spec.stream_error_after:
                    # The provider's own report of a failure after the stream began.
                    conn.write_chunk(error_event)
                    conn.end_stream()
                    record.state = "errored"
                    return
                if spec.cut_after is not None and i >= spec.cut_after:
                    # Half an event, then the connection drops without the final chunk.
                    conn.write_chunk(event[: len(event) // 2])
                    await asyncio.sleep(0.02)
                    record.state = "cut"
                    conn.abort()
                    return
                if delay and i:
                    await asyncio.sleep(delay)
                conn.write_chunk(event)
                await conn.drain()
                record.bytes_sent += len(event)
                record.chunks_sent += 1
            conn.end_stream()
            record.state = "completed"
        except (asyncio.CancelledError, ClientGone):
            record.state = "cancelled"
            raise


def reset_connection(conn: HttpConnection) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than a FIN."""
    transport = conn.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
