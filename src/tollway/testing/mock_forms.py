"""What the mock provider's media endpoints (images, audio, moderations, rerank) share: reading
a multipart/form-data request into a record of its fields, OpenAI's error body naming the
parameter at fault, and sending a non-JSON body (text, subtitles) with the `FaultSpec`'s
latency and cut.

A form is read with `tollway.llm.multipart`, which locates each part by offsets: a file's
bytes are never copied. The record a form becomes (for `/_mock/requests`, and what the
handlers read) holds each text field's value and, for each file, its name, content type and
size; a field sent more than once becomes a list.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.llm.multipart import MultipartError, Part, boundary_of, field, parts
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.testing.mock_delivery import Delivery
from tollway.testing.mock_faults import FaultSpec

Handler = Callable[
    [HttpConnection, Request, dict[str, Any], str, FaultSpec], Awaitable[None] | None
]


@dataclass(slots=True)
class MediaContext:
    """What a media handler needs from the mock provider: its delivery and its id counter."""

    delivery: Delivery
    ids: itertools.count[int]

    def next_id(self) -> int:
        return next(self.ids)


def param_error(
    message: str, param: str | None, code: str | None = None, status: int = 400
) -> bytes:
    """OpenAI's error body, naming the parameter at fault."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def missing(param: str) -> bytes:
    return param_error(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def read_form(request: Request) -> dict[str, Any] | str:
    """The record of a multipart form (see the module docstring), or what is wrong with it."""
    content_type = request.header(b"content-type")
    boundary = boundary_of(content_type)
    if boundary is None:
        shown = (content_type or b"none").decode("latin-1")
        return f"Invalid Content-Type header ({shown}), expected multipart/form-data."
    try:
        found = parts(request.body, boundary)
        record: dict[str, Any] = {}
        for part in found:
            if part.filename is None:
                value: Any = field(request.body, [part], part.name)
            else:
                value = {
                    "filename": part.filename,
                    "content_type": part.content_type,
                    "size": part.end - part.start,
                }
            name = part.name
            if name in record:
                kept = record[name]
                record[name] = [*kept, value] if isinstance(kept, list) else [kept, value]
            else:
                record[name] = value
    except MultipartError as exc:
        return f"Could not parse multipart form: {exc}."
    return record


def files(request: Request, *names: str) -> list[Part]:
    """The file parts of the form under any of `names`, in order."""
    boundary = boundary_of(request.header(b"content-type"))
    assert boundary is not None  # read_form accepted the form
    return [p for p in parts(request.body, boundary) if p.name in names and p.filename is not None]


def text_field(body: dict[str, Any], name: str) -> str | None:
    """A text field as a string (the first, when sent more than once), else None."""
    value = body.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def int_field(body: dict[str, Any], name: str, default: int) -> int | None:
    """An integer field given as a JSON number or as form text; None when it is not one."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def float_field(body: dict[str, Any], name: str, default: float) -> float | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def truthy(body: dict[str, Any], name: str) -> bool:
    """A boolean field: JSON true, or form text "true"."""
    value = body.get(name)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def send_body(
    delivery: Delivery,
    conn: HttpConnection,
    payload: bytes,
    spec: FaultSpec,
    content_type: bytes = b"application/json",
) -> Awaitable[None] | None:
    """A 200 body of any type, with the spec's latency, and its cut (half the promised body,
    then the connection drops)."""
    headers = [(b"content-type", content_type)]
    if not spec.latency_ms and spec.cut_after is None:
        conn.send(200, headers, payload)
        return None

    async def later() -> None:
        if spec.latency_ms:
            try:
                await asyncio.sleep(spec.latency_ms / 1000)
            except asyncio.CancelledError:
                delivery.abandoned += 1
                raise
        if spec.cut_after is None:
            conn.send(200, headers, payload)
            return
        assert conn.transport is not None
        conn.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (content_type, len(payload), payload[: len(payload) // 2])
        )
        await asyncio.sleep(0.05)
        conn.abort()

    return later()


def sse_event(kind: str, payload: dict[str, Any]) -> bytes:
    """An SSE event with OpenAI's typed payload: `event:` names the `type` inside."""
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), orjson.dumps({"type": kind, **payload}))


def split_bytes(data: bytes, pieces: int) -> list[bytes]:
    """`data` in `pieces` nearly equal slices (fewer when it is shorter), in order."""
    pieces = max(1, min(pieces, len(data)))
    size, extra = divmod(len(data), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(data[start:end])
        start = end
    return out
