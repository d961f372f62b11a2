"""OpenAI's image API as the mock provider speaks it: `POST /images/generations` (JSON),
`/images/edits` and `/images/variations` (multipart forms).

Every image is the same small PNG (4x4 pixels, built here with zlib and struct), as base64
(`b64_json`) or as a URL the mock serves itself (`GET /_mock/images/{name}.png`). GPT image
models (`gpt-image-*`) always answer `b64_json`, report token usage, and stream with
`stream: true` (SSE: `partial_images` partial events, then one `completed` event per image);
DALL-E models refuse to stream.
"""

from __future__ import annotations

import base64
import math
import re
import struct
import time
import zlib
from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.testing import mock_openai as wire
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_forms import (
    MediaContext,
    files,
    int_field,
    missing,
    param_error,
    send_body,
    sse_event,
    text_field,
    truthy,
)

_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
# Output tokens of one 1024x1024 image by quality, as gpt-image-1 bills them.
_QUALITY_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056, "standard": 1056}
# Input tokens billed for each image given to an edit.
_IMAGE_INPUT_TOKENS = 85


def png(width: int, height: int) -> bytes:
    """A PNG of `width` x `height` pixels (a small repeating pattern, so it stays small)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + b"".join(bytes(((x * 64) & 255, (y * 64) & 255, 160)) for x in range(width))
        for y in range(height)
    )
    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


PNG = png(4, 4)
PNG_B64 = base64.b64encode(PNG).decode()


def is_gpt_image(model: str) -> bool:
    return model.startswith("gpt-image") or model.startswith("chatgpt-image")


def _common(body: dict[str, Any], model: str, max_n: int) -> tuple[int, str] | bytes:
    """n and size, or the error body for them."""
    n = int_field(body, "n", 1)
    if n is None or not 1 <= n <= max_n:
        return param_error(
            f"Invalid 'n': expected an integer between 1 and {max_n}.", "n", "invalid_value"
        )
    if model.startswith("dall-e-3") and n != 1:
        return param_error("dall-e-3 supports only n=1.", "n", "invalid_value")
    size = text_field(body, "size") or ("auto" if is_gpt_image(model) else "1024x1024")
    if size != "auto" and not _SIZE.match(size):
        return param_error(f"Invalid 'size': {size!r}.", "size", "invalid_value")
    fmt = body.get("response_format")
    if fmt is not None and fmt not in ("url", "b64_json"):
        return param_error(
            f"Invalid 'response_format': {fmt!r}; expected 'url' or 'b64_json'.",
            "response_format",
            "invalid_value",
        )
    out = body.get("output_format")
    if out is not None and out not in ("png", "jpeg", "webp"):
        return param_error(f"Invalid 'output_format': {out!r}.", "output_format", "invalid_value")
    return n, size


def _output_tokens(size: str, quality: str) -> int:
    per = _QUALITY_TOKENS.get(quality, 1056)
    if size == "auto":
        return per
    width, height = (int(v) for v in size.split("x"))
    return math.ceil(per * width * height / (1024 * 1024))


def _usage(prompt: str, images_in: int, n: int, size: str, quality: str) -> dict[str, Any]:
    text = wire.count_tokens(prompt)
    image = images_in * _IMAGE_INPUT_TOKENS
    output = n * _output_tokens(size, quality)
    return {
        "input_tokens": text + image,
        "output_tokens": output,
        "total_tokens": text + image + output,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image},
    }


def _answer(
    request: Request,
    body: dict[str, Any],
    model: str,
    n: int,
    size: str,
    prompt: str,
    images_in: int,
    image_id: int,
) -> dict[str, Any]:
    gpt = is_gpt_image(model)
    b64 = gpt or body.get("response_format") == "b64_json"
    host = (request.header(b"host") or b"127.0.0.1").decode("latin-1")
    data: list[dict[str, Any]] = []
    for i in range(n):
        item: dict[str, Any] = (
            {"b64_json": PNG_B64}
            if b64
            else {"url": f"http://{host}/_mock/images/img-{image_id}-{i}.png"}
        )
        if model.startswith("dall-e-3"):
            item["revised_prompt"] = f"A mock rendering of: {prompt}"
        data.append(item)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt:
        quality = text_field(body, "quality") or "auto"
        answer["background"] = "opaque"
        answer["output_format"] = body.get("output_format") or "png"
        answer["quality"] = "medium" if quality == "auto" else quality
        answer["size"] = "1024x1024" if size == "auto" else size
        answer["usage"] = _usage(prompt, images_in, n, size, quality)
    return answer


def _stream_events(kind: str, answer: dict[str, Any], body: dict[str, Any]) -> list[bytes]:
    partials = int_field(body, "partial_images", 0) or 0
    common = {
        "background": answer["background"],
        "created_at": answer["created"],
        "output_format": answer["output_format"],
        "quality": answer["quality"],
        "size": answer["size"],
    }
    out = [
        sse_event(
            f"{kind}.partial_image",
            {"b64_json": PNG_B64, **common, "partial_image_index": i},
        )
        for i in range(min(partials, 3))
    ]
    for _ in answer["data"]:
        out.append(
            sse_event(
                f"{kind}.completed", {"b64_json": PNG_B64, **common, "usage": answer["usage"]}
            )
        )
    return out


def _reply(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
    kind: str,
    prompt: str,
    images_in: int,
) -> Awaitable[None] | None:
    checked = _common(body, model, 10)
    if isinstance(checked, bytes):
        conn.send_json(400, checked)
        return None
    n, size = checked
    image_id = ctx.next_id()
    answer = _answer(request, body, model, n, size, prompt, images_in, image_id)
    if not truthy(body, "stream"):
        return send_body(ctx.delivery, conn, orjson.dumps(answer), spec)
    if not is_gpt_image(model):
        conn.send_json(400, param_error(f"Streaming is not supported for model {model}.", "stream"))
        return None
    events = _stream_events(kind, answer, body)
    return ctx.delivery.stream(conn, f"img-{image_id}", events, spec, wire.stream_error_event())


def generations(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    prompt = body.get("prompt")
    if prompt is None:
        conn.send_json(400, missing("prompt"))
        return None
    if not isinstance(prompt, str) or not prompt.strip():
        conn.send_json(400, param_error("Invalid 'prompt': expected a non-empty string.", "prompt"))
        return None
    return _reply(ctx, conn, request, body, model, spec, "image_generation", prompt, 0)


def edits(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    images = files(request, "image", "image[]")
    if not images:
        conn.send_json(400, missing("image"))
        return None
    if len(images) > 1 and not is_gpt_image(model):
        conn.send_json(
            400, param_error(f"Model {model} takes one image to edit.", "image", "invalid_value")
        )
        return None
    if len(images) > 16:
        conn.send_json(400, param_error("At most 16 images may be edited.", "image"))
        return None
    prompt = text_field(body, "prompt")
    if prompt is None or not prompt.strip():
        conn.send_json(400, missing("prompt"))
        return None
    return _reply(ctx, conn, request, body, model, spec, "image_edit", prompt, len(images))


def variations(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    images = files(request, "image")
    if not images:
        conn.send_json(400, missing("image"))
        return None
    if is_gpt_image(model) or model.startswith("dall-e-3"):
        conn.send_json(
            400,
            param_error(f"Model {model} does not support variations.", "model", "invalid_value"),
        )
        return None
    if truthy(body, "stream"):
        conn.send_json(400, param_error("Variations do not stream.", "stream"))
        return None
    return _reply(ctx, conn, request, body, model, spec, "image_variation", "", 1)
