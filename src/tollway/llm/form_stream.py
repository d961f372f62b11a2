"""multipart/form-data read as it arrives, in bounded memory: for uploads the gateway keeps
itself (the Files API), whose file part goes to disk while the form is still coming in.

`FormStream.feed` takes the body's bytes in whatever pieces they come and returns what they
completed, in order: a `PartHead` when a part begins, its contents as `bytes` (in as many
pieces as it takes), and `PART_END` when the part is over. Nothing is held but the last few
bytes of a piece (where the next boundary may begin) and a part's headers while they arrive,
so a file of any size passes through without being kept. `close` says whether the form
ended properly (its closing boundary came). Malformed forms raise `MultipartError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tollway.llm.multipart import MultipartError
from tollway.llm.multipart import _part_head as read_part_head

__all__ = ["PART_END", "FormEvent", "FormStream", "MultipartError", "PartHead"]


@dataclass(frozen=True, slots=True)
class PartHead:
    """A part begins: its field name, and its file name and type when it is a file."""

    name: str
    filename: str | None
    content_type: str | None


# A part's contents are over (the events are `PartHead | bytes | None`).
PART_END: Final = None
FormEvent = PartHead | bytes | None

# Bounds on what is held while it arrives: the text before the first boundary, a part's
# headers, and what may follow a boundary on its line.
_MAX_PREAMBLE = 8192
_MAX_PART_HEAD = 8192
_MAX_PADDING = 256

_PREAMBLE, _DELIMITER, _HEAD, _BODY, _EPILOGUE = range(5)


class FormStream:
    __slots__ = ("_buffer", "_dash_boundary", "_delimiter", "_state")

    def __init__(self, boundary: bytes) -> None:
        self._dash_boundary = b"--" + boundary
        # Between parts: the line break before a boundary belongs to the boundary.
        self._delimiter = b"\r\n--" + boundary
        self._buffer = b""
        self._state = _PREAMBLE

    @property
    def done(self) -> bool:
        """The closing boundary has come (whatever follows is ignored)."""
        return self._state == _EPILOGUE

    def feed(self, data: bytes) -> list[FormEvent]:
        """The events the form's next bytes complete."""
        events: list[FormEvent] = []
        if self._state == _EPILOGUE:
            return events
        buffer = self._buffer + data if self._buffer else data
        at = 0
        while True:
            state = self._state
            if state == _BODY:
                found = buffer.find(self._delimiter, at)
                if found < 0:
                    # What cannot be the start of the next boundary is the part's.
                    safe = len(buffer) - len(self._delimiter) + 1
                    if safe > at:
                        events.append(buffer[at:safe])
                        at = safe
                    break
                if found > at:
                    events.append(buffer[at:found])
                events.append(PART_END)
                at = found + len(self._delimiter)
                self._state = _DELIMITER
            elif state == _DELIMITER:
                if len(buffer) - at < 2:
                    break
                if buffer[at : at + 2] == b"--":
                    self._state = _EPILOGUE
                    at = len(buffer)
                    break
                line_end = buffer.find(b"\r\n", at)
                if line_end < 0:
                    if len(buffer) - at > _MAX_PADDING:
                        raise MultipartError("a boundary line is not followed by CRLF")
                    break
                if buffer[at:line_end].strip(b" \t"):
                    raise MultipartError("a boundary line is not followed by CRLF")
                at = line_end + 2
                self._state = _HEAD
            elif state == _HEAD:
                if buffer[at : at + 2] == b"\r\n":
                    head_end, body_at = at, at + 2  # a part without headers
                else:
                    head_end = buffer.find(b"\r\n\r\n", at)
                    body_at = head_end + 4
                if head_end < 0:
                    if len(buffer) - at > _MAX_PART_HEAD:
                        raise MultipartError("a part's headers do not end")
                    break
                if head_end - at > _MAX_PART_HEAD:
                    raise MultipartError("a part's headers do not end")
                events.append(PartHead(*read_part_head(buffer[at:head_end])))
                at = body_at
                self._state = _BODY
            else:  # _PREAMBLE
                found = buffer.find(self._dash_boundary, at)
                if found < 0:
                    if len(buffer) - at > _MAX_PREAMBLE:
                        raise MultipartError("the body holds no part (its boundary is not in it)")
                    break
                at = found + len(self._dash_boundary)
                self._state = _DELIMITER
        self._buffer = buffer[at:] if self._state != _EPILOGUE else b""
        return events

    def close(self) -> None:
        """The body is over: raises MultipartError unless the form ended with its closing
        boundary."""
        if self._state != _EPILOGUE:
            raise MultipartError("the form does not end with its closing boundary")
