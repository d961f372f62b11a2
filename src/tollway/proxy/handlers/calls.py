"""Native calls: the provider speaks the client's API, so the request goes as it came (the
model name spliced in when the deployment renames it) and the answer comes back as it is (only
its errors may be reshaped into the client's error format)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tollway.config.snapshot import ProviderRuntime
from tollway.llm import multipart
from tollway.llm.client_apis import ClientApi
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.replies import served_headers

_JSON = b"application/json"


def answer_native(
    ctx: RequestContext,
    conn: HttpConnection,
    api: ClientApi,
    provider: ProviderRuntime,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    served = served_headers(ctx)
    if status >= 400:
        ctx.outcome = "upstream_error"
        status, body, passed = api.upstream_error(provider.name, status, headers, body)
        ctx.status = status
        conn.send_json(status, body, passed + served)
        return
    ctx.outcome = "completed"
    route = ctx.route
    if route is not None and route.pipeline.done_phase:
        ctx.usage = api.call_usage(ctx.request.body, body)
    ctx.response_body = body
    conn.send(status, [(b"content-type", content_type(headers) or _JSON), *served], body)


def complete_head(prefix: bytes, ctx: RequestContext, api: ClientApi, length: int | None) -> bytes:
    """A native call's head: the deployment's prefix, the headers the client chose for
    itself, the trace context, the request id and the length (None: chunked)."""
    request = ctx.request
    parts = [prefix]
    for name in api.forwarded_headers:
        value = request.header(name)
        if value is not None:
            parts.append(b"%s: %s\r\n" % (name, value))
    if ctx.trace_parent is not None:
        parts.append(b"traceparent: %s\r\n" % ctx.trace_parent)
    if length is None:
        parts.append(b"x-request-id: %s\r\ntransfer-encoding: chunked\r\n\r\n" % request.request_id)
    else:
        parts.append(
            b"x-request-id: %s\r\ncontent-length: %d\r\n\r\n" % (request.request_id, length)
        )
    return b"".join(parts)


def content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"content-type":
            return value
    return b""


def with_usage_requested(body: bytes) -> bytes:
    """`body` asking for the stream's usage (`stream_options.include_usage`): metering needs
    the upstream's own count. The usage chunk is then kept from the client (relay_native)."""
    if b'"stream_options"' not in body:
        start = body.index(b"{")
        return body[: start + 1] + b'"stream_options":{"include_usage":true},' + body[start + 1 :]
    parsed: dict[str, Any] = orjson.loads(body)
    options = parsed.get("stream_options")
    parsed["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return orjson.dumps(parsed)


# A JSON object key "model" and its string value, where the opening quote is not escaped.
_MODEL_KEY = rb'(?<!\\)"model"\s*:\s*'


def splice_model(body: bytes, model: str, upstream_model: str) -> bytes:
    """`body` with its top-level model renamed, without re-serialising the rest.

    The body was validated as a JSON object whose `model` is `model`. A `"model": "<model>"`
    pair that occurs exactly once must be that one; if the same pair also occurs deeper
    (a tool's schema, say), the body is parsed and written again instead.
    """
    value = orjson.dumps(model)
    found = list(re.finditer(_MODEL_KEY + re.escape(value), body))
    if len(found) == 1:
        start, end = found[0].span()
        key = body[start : end - len(value)]
        return body[:start] + key + orjson.dumps(upstream_model) + body[end:]
    parsed: dict[str, Any] = orjson.loads(body)
    parsed["model"] = upstream_model
    return orjson.dumps(parsed)


def rename_form_model(body: bytes, content_type: bytes | None, upstream_model: str) -> bytes:
    """A multipart form (read at intake, so well formed) with its `model` field renamed."""
    boundary = multipart.boundary_of(content_type)
    assert boundary is not None
    # A form without a model (one the API defaults) gets the deployment's.
    found = multipart.parts(body, boundary)
    return multipart.set_field(body, found, boundary, "model", upstream_model)


class HeldAnswer:
    """Stands for the client's connection while an answer waits: keeps what would be sent."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None

    def send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.sent = (status, headers, body)

    def send_json(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.send(status, [(b"content-type", _JSON), *(headers or ())], body)
