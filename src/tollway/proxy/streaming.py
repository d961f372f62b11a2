"""Relaying a stream from an upstream to the client as it arrives, natively or translated.

Native streams are forwarded event by event, whole: bytes after the last event boundary wait
for the rest of their event. That costs nothing in latency (an event is useless to a client
until complete) and it means that when the upstream fails mid-stream the gateway can always end
with one well-formed error event in the client's API format, instead of a clean end that would
pass a truncated answer off as a whole one. Translated streams go through the provider's
stream translator and the client API's encoder. Nothing is retried once a byte has gone to the
client. Both report the call's usage and how it ended to its context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from tollway.config.snapshot import ProviderRuntime
from tollway.llm.client_apis import ClientApi, StreamEncoder
from tollway.llm.produced import Delivered
from tollway.llm.sse import EventTooLarge, SseFramer
from tollway.policies.context import RequestContext
from tollway.providers.base import ProviderResponseError, ProviderStreamError, StreamTranslator
from tollway.proxy.connection import HttpConnection
from tollway.proxy.replies import failure_outcome, upstream_failure
from tollway.proxy.upstream import UpstreamConnection, UpstreamError

log = logging.getLogger("tollway.proxy")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


async def relay_native(
    ctx: RequestContext,
    conn: HttpConnection,
    upstream: UpstreamConnection,
    api: ClientApi,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Stream a native provider's events to the client, with backpressure both ways."""
    assert ctx.route is not None
    pipeline = ctx.route.pipeline
    # A call with something to write before its answer goes out (whose is the response id
    # its stream names) reads the stream's events even with no policy to meter them.
    before = ctx.before_answer
    watcher = api.usage_watcher() if pipeline.done_phase or before is not None else None
    delivered = ctx.delivered = Delivered() if watcher is not None else None
    conn.start_stream(
        200,
        [*SSE_HEADERS, *(headers or ())],
        lambda message: api.stream_error(message, "gateway_shutdown"),
    )
    framer = SseFramer()
    try:
        while True:
            chunk = await upstream.next_chunk()
            if chunk is None:
                break
            events = framer.feed(chunk)
            if events:
                if not ctx.first_byte_at:
                    ctx.first_byte_at = time.monotonic()
                if watcher is not None:
                    if ctx.asked_usage:
                        events = watcher.take(events)
                    else:
                        watcher.feed(events)
                    if before is not None and watcher.answer_id is not None:
                        ctx.answer_id = watcher.answer_id
                        await before()
                        before = None
                if pipeline.chunk_phase:
                    events = pipeline.chunk(ctx, events)
                if events:
                    conn.write_chunk(events)
                    if delivered is not None:
                        delivered.add(events)
                    await conn.drain()
        if framer.partial:
            ctx.outcome = "upstream_error"
            conn.write_chunk(
                api.stream_error(
                    "The upstream ended the stream in the middle of an event.",
                    "upstream_stream_truncated",
                )
            )
        else:
            ctx.outcome = "completed"
    except UpstreamError as exc:
        ctx.outcome = failure_outcome(exc)
        code = "upstream_timeout" if exc.kind == "timeout" else "upstream_stream_interrupted"
        conn.write_chunk(api.stream_error(f"The upstream stream failed: {exc.message}.", code))
    except EventTooLarge as exc:
        ctx.outcome = "upstream_error"
        conn.write_chunk(
            api.stream_error(f"The upstream stream failed: {exc}.", "upstream_protocol")
        )
    finally:
        if not upstream.done:
            upstream.abort()
        if watcher is not None:
            ctx.usage = watcher.usage
            ctx.answer_id = watcher.answer_id
    conn.end_stream()


async def relay_raw(
    ctx: RequestContext,
    conn: HttpConnection,
    upstream: UpstreamConnection,
    api: ClientApi,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Relay an answer that is not events (speech: audio) as it arrives, with its own content
    type. A failure midway cannot be told in the body: the connection is cut, so that the
    client sees a truncated answer, never a clean end."""
    kept = [(name, value) for name, value in upstream.headers if name == b"content-type"]
    conn.start_stream(upstream.status, [*kept, *(headers or ())])
    try:
        while True:
            chunk = await upstream.next_chunk()
            if chunk is None:
                break
            if not ctx.first_byte_at:
                ctx.first_byte_at = time.monotonic()
            conn.write_chunk(chunk)
            await conn.drain()
        ctx.outcome = "completed"
    except UpstreamError as exc:
        ctx.outcome = failure_outcome(exc)
        log.warning("an upstream's %s answer failed midway: %s", api.endpoint, exc.message)
        conn.abort()
        return
    finally:
        if not upstream.done:
            upstream.abort()
        if ctx.route is not None and ctx.route.pipeline.done_phase:
            ctx.usage = api.call_usage(ctx.request.body, b"")
    conn.end_stream()


def _take(ctx: RequestContext, pending: list[bytes], delivered: Delivered | None) -> bytes:
    """What is pending, as it goes out: the chunk phase applied, counted as delivered. (A
    function of its own, not a closure: a compiled coroutine's closure would hold the call's
    objects in a reference cycle.)"""
    out = b"".join(pending)
    pending.clear()
    if out:
        if not ctx.first_byte_at:
            ctx.first_byte_at = time.monotonic()
        route = ctx.route
        if route is not None and route.pipeline.chunk_phase:
            out = route.pipeline.chunk(ctx, out)
        if delivered is not None:
            delivered.add(out)
    return out


async def relay_translated(
    ctx: RequestContext,
    conn: HttpConnection,
    upstream: UpstreamConnection,
    provider: ProviderRuntime,
    translator: StreamTranslator,
    encoder: StreamEncoder,
    headers: list[tuple[bytes, bytes]] | None = None,
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Stream a provider's events to the client through the canonical form. `before_end`:
    what must be written before the stream's last event goes out (the call's kept state)."""
    assert ctx.route is not None
    pipeline = ctx.route.pipeline
    delivered = ctx.delivered = Delivered() if pipeline.done_phase else None
    conn.start_stream(
        200, [*SSE_HEADERS, *(headers or ())], lambda message: encoder.error(503, message)
    )
    # What one read of the upstream made, kept until written: when the read's events end in
    # an error, what came before it in the same read still reaches the client, first.
    pending: list[bytes] = []

    try:
        while True:
            data = await upstream.next_chunk()
            if data is None:
                break
            for chunk in translator.feed(data):
                pending.append(encoder.feed(chunk))
            out = _take(ctx, pending, delivered)
            if out:
                conn.write_chunk(out)
                await conn.drain()
        for chunk in translator.finish():
            pending.append(encoder.feed(chunk))
        last = _take(ctx, pending, delivered) + encoder.finish()
        ctx.outcome = "completed"
    except ProviderStreamError as exc:
        ctx.outcome = "upstream_error"
        for chunk in exc.before:
            pending.append(encoder.feed(chunk))
        last = _take(ctx, pending, delivered) + encoder.error(exc.error.status, exc.error.message)
    except UpstreamError as exc:
        ctx.outcome = failure_outcome(exc)
        failure = upstream_failure(provider, exc)
        last = _take(ctx, pending, delivered) + encoder.error(failure.status, failure.message)
    except (ProviderResponseError, EventTooLarge) as exc:
        log.warning("provider %s sent a stream that could not be read: %s", provider.name, exc)
        ctx.outcome = "upstream_error"
        last = _take(ctx, pending, delivered) + encoder.error(
            502, f"Upstream provider '{provider.name}' sent a stream that could not be read."
        )
    finally:
        if not upstream.done:
            upstream.abort()
        ctx.usage = translator.usage
    if before_end is not None:
        try:
            await before_end()
        except Exception:
            log.exception("a stream's state could not be written")
    conn.write_chunk(last)
    conn.end_stream()
