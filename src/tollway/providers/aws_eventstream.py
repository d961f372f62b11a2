"""The AWS event stream framing (application/vnd.amazon.eventstream), used by Bedrock's
ConverseStream: binary messages, each

    total length (u32) | headers length (u32) | prelude CRC32 (u32) | headers | payload |
    message CRC32 (u32)

big-endian, with CRC32 over the prelude and over everything before the final CRC. Headers are
(name length u8, name, type u8, value); Bedrock uses string values (type 7, u16 length).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_PRELUDE = struct.Struct(">II")
_STRING = 7
_VALUE_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # fixed-size header types
MAX_MESSAGE = 16 * 1024 * 1024


class EventStreamError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, str]
    payload: bytes


class EventStreamDecoder:
    """Feed bytes as they arrive, get whole messages; a CRC mismatch is an error."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out = []
        while len(self._buf) >= 12:
            total, headers_len = _PRELUDE.unpack_from(self._buf)
            if total < 16 or total > MAX_MESSAGE or headers_len > total - 16:
                raise EventStreamError(f"invalid event stream prelude (length {total})")
            (prelude_crc,) = struct.unpack_from(">I", self._buf, 8)
            if zlib.crc32(self._buf[:8]) != prelude_crc:
                raise EventStreamError("event stream prelude CRC mismatch")
            if len(self._buf) < total:
                break
            frame, self._buf = self._buf[:total], self._buf[total:]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != message_crc:
                raise EventStreamError("event stream message CRC mismatch")
            headers = _headers(frame[12 : 12 + headers_len])
            out.append(Message(headers, frame[12 + headers_len : total - 4]))
        return out

    @property
    def pending(self) -> bool:
        return bool(self._buf)


def _headers(raw: bytes) -> dict[str, str]:
    headers = {}
    i = 0
    while i < len(raw):
        name_len = raw[i]
        name = raw[i + 1 : i + 1 + name_len].decode()
        i += 1 + name_len
        kind = raw[i]
        i += 1
        if kind in (6, _STRING):  # byte array, string: u16 length
            (length,) = struct.unpack_from(">H", raw, i)
            value = raw[i + 2 : i + 2 + length]
            i += 2 + length
            headers[name] = value.decode("utf-8", "replace")
        elif kind in _VALUE_SIZES:
            i += _VALUE_SIZES[kind]
        else:
            raise EventStreamError(f"unknown event stream header type {kind}")
    return headers


def encode(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string headers (for the mock provider and tests)."""
    raw = b"".join(
        bytes([len(k)]) + k.encode() + bytes([_STRING]) + struct.pack(">H", len(v)) + v.encode()
        for k, v in headers.items()
    )
    total = 16 + len(raw) + len(payload)
    prelude = _PRELUDE.pack(total, len(raw))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
    return head + struct.pack(">I", zlib.crc32(head))
