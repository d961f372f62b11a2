"""WebSocket framing (RFC 6455), as far as the gateway and its mock provider need it: reading
the messages of a byte stream as it passes, and writing frames.

The gateway relays a realtime session's bytes untouched; it reads the provider's side only to
meter the session (the usage in its `response.done` events). So the reader keeps the payload
only of the messages a caller wants (`wanted`, decided from a message's first bytes): audio
deltas and other bulk pass by with nothing held but a byte count. Per-message compression is
never negotiated on a relayed session (the gateway drops the offer), so payloads are plain.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Callable

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The subprotocol a browser's WebSocket carries an API key in (browsers cannot set headers on
# a WebSocket): OpenAI's realtime convention, which the gateway takes for its own keys.
KEY_PROTOCOL = b"openai-insecure-api-key."
# What a message's first bytes must show for `wanted` to decide on it.
_PEEK = 256


class FrameError(ValueError):
    """The stream is not WebSocket framing (the message says why)."""


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept answering a handshake's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def frame(opcode: int, payload: bytes, *, mask: bool = False, fin: bool = True) -> bytes:
    """One frame; a client's frames are masked (`mask`), a server's are not."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    length = len(payload)
    flag = 0x80 if mask else 0
    if length < 126:
        head.append(flag | length)
    elif length < 1 << 16:
        head.append(flag | 126)
        head += struct.pack("!H", length)
    else:
        head.append(flag | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _unmask(payload, key)


def _unmask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


class MessageReader:
    """Reads whole messages from a stream of frames fed in pieces of any size.

    `wanted(opcode, first_bytes)` says whether a message is kept (its payload joined and
    returned by `feed`); the others are skipped as they pass. Control frames (close, ping,
    pong) come back as messages of their own; `max_message` bounds what is held.
    """

    __slots__ = (
        "_buffer",
        "_control",
        "_frame_fin",
        "_frame_opcode",
        "_keep",
        "_kept",
        "_mask",
        "_message_opcode",
        "_offset",
        "_peek",
        "_remaining",
        "_size",
        "max_message",
        "wanted",
    )

    def __init__(
        self, wanted: Callable[[int, bytes], bool], max_message: int = 8 * 1024 * 1024
    ) -> None:
        self.wanted = wanted
        self.max_message = max_message
        self._buffer = b""
        # The frame being read: its payload bytes still to come, and how to read them.
        self._remaining = 0
        self._frame_opcode = 0
        self._frame_fin = True
        self._mask: bytes | None = None
        self._offset = 0
        # The message being read (data frames may be fragmented).
        self._message_opcode = 0
        self._peek = b""
        self._keep: bool | None = None
        self._kept: list[bytes] = []
        self._size = 0
        self._control = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The messages completed by `data` that are kept: (opcode, payload)."""
        out: list[tuple[int, bytes]] = []
        buffer = self._buffer + data if self._buffer else data
        at = 0
        while True:
            if self._remaining:
                take = min(self._remaining, len(buffer) - at)
                if take <= 0:
                    break
                self._payload(buffer[at : at + take])
                at += take
                self._remaining -= take
                if not self._remaining:
                    self._frame_done(out)
                continue
            header = self._header(buffer, at)
            if header is None:
                break
            at = header
            if not self._remaining:
                self._frame_done(out)
        self._buffer = buffer[at:]
        return out

    def _header(self, buffer: bytes, at: int) -> int | None:
        """Read a frame header at `at`: where its payload starts, or None until it is whole."""
        if len(buffer) - at < 2:
            return None
        first, second = buffer[at], buffer[at + 1]
        if first & 0x70:
            raise FrameError("reserved bits set (an extension nobody negotiated)")
        length = second & 0x7F
        start = at + 2
        if length == 126:
            if len(buffer) - start < 2:
                return None
            length = struct.unpack_from("!H", buffer, start)[0]
            start += 2
        elif length == 127:
            if len(buffer) - start < 8:
                return None
            length = struct.unpack_from("!Q", buffer, start)[0]
            start += 8
        mask = None
        if second & 0x80:
            if len(buffer) - start < 4:
                return None
            mask = buffer[start : start + 4]
            start += 4
        opcode = first & 0x0F
        fin = bool(first & 0x80)
        if opcode >= CLOSE:
            if not fin or length > 125:
                raise FrameError("a control frame is fragmented or longer than 125 bytes")
        elif opcode == CONTINUATION:
            if not self._message_opcode:
                raise FrameError("a continuation frame with no message to continue")
        else:
            if self._message_opcode:
                raise FrameError("a new message began before the last one ended")
            self._message_opcode = opcode
        self._frame_opcode = opcode
        self._frame_fin = fin
        self._mask = mask
        self._offset = 0
        self._remaining = length
        return start

    def _payload(self, piece: bytes) -> None:
        if self._mask is not None:
            shift = self._offset % 4
            piece = _unmask(piece, self._mask[shift:] + self._mask[:shift])
        self._offset += len(piece)
        if self._frame_opcode >= CLOSE:
            self._control += piece  # at most 125 bytes
            return
        if self._keep is None:
            self._peek += piece
            if len(self._peek) >= _PEEK:
                self._decide()
        elif self._keep:
            self._kept.append(piece)
            self._size += len(piece)
            if self._size > self.max_message:
                self._keep = False
                self._kept = []

    def _decide(self) -> None:
        self._keep = self.wanted(self._message_opcode, self._peek)
        if self._keep:
            self._kept = [self._peek]
            self._size = len(self._peek)
            if self._size > self.max_message:
                self._keep = False
                self._kept = []
        self._peek = b""

    def _frame_done(self, out: list[tuple[int, bytes]]) -> None:
        if self._frame_opcode >= CLOSE:
            out.append((self._frame_opcode, self._control))
            self._control = b""
            return
        if not self._frame_fin:
            return
        if self._keep is None:
            self._decide()
        if self._keep:
            out.append((self._message_opcode, b"".join(self._kept)))
        self._message_opcode = 0
        self._keep = None
        self._kept = []


def without_key_protocol(offered: bytes) -> bytes | None:
    """A Sec-WebSocket-Protocol value as it may go upstream: without a key subprotocol (the
    gateway's key stays at the gateway); None when no other subprotocol is left."""
    protocols = [p.strip() for p in offered.split(b",")]
    return b", ".join(p for p in protocols if p and not p.startswith(KEY_PROTOCOL)) or None


def key_protocol_taken(offered: bytes | None, answered: list[tuple[bytes, bytes]]) -> bytes | None:
    """The subprotocol the gateway's 101 must name itself, if any: a browser that offered only
    its key subprotocol fails a handshake whose answer names none of those it offered, and the
    upstream, which never saw the key, names none. Then the key subprotocol is taken."""
    if offered is None or without_key_protocol(offered) is not None:
        return None
    if any(name == b"sec-websocket-protocol" for name, _ in answered):
        return None
    for protocol in offered.split(b","):
        if protocol.strip().startswith(KEY_PROTOCOL):
            return protocol.strip()
    return None
