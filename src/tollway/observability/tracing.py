"""OpenTelemetry traces of model calls: off unless an OTLP endpoint is configured by the
standard variables, and then one span per call, with the GenAI semantic conventions.

The span starts when the request head is read (the `trace` policy's request phase), as a child
of the client's W3C `traceparent` when it sent one, and its context goes upstream in the
gateway's own `traceparent`, so that the provider's spans (where it records any) hang under
it. It ends in the done phase, with what the call learnt (model served, tokens, status).

Each worker builds its tracer provider lazily, after the fork (the batch exporter's thread
must belong to the worker), and exports in the background: no request waits on it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

if TYPE_CHECKING:
    # The SDK and the exporter are imported when tracing is first used: off (the default),
    # they cost a worker nothing, not even their memory.
    from opentelemetry.sdk.trace import TracerProvider

from tollway import __version__

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_lock = threading.Lock()
_provider: dict[int, TracerProvider] = {}


def enabled(environ: Mapping[str, str]) -> bool:
    """Traces are exported when an OTLP endpoint is set (and not turned off)."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return any(environ.get(name) for name in _ENDPOINTS)


def tracer() -> trace.Tracer:
    """This process's tracer (built on first use, so after the worker's fork)."""
    pid = os.getpid()
    provider = _provider.get(pid)
    if provider is None:
        with _lock:
            provider = _provider.get(pid)
            if provider is None:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
                from opentelemetry.sdk.resources import Resource
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                name = os.environ.get("OTEL_SERVICE_NAME") or "tollway"
                provider = TracerProvider(
                    resource=Resource.create({"service.name": name, "service.version": __version__})
                )
                # The exporter reads the OTEL_EXPORTER_OTLP_* variables itself.
                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                _provider[pid] = provider
    return provider.get_tracer("tollway", __version__)


def shutdown() -> None:
    """Export what is left (a worker's last spans) before the process ends."""
    provider = _provider.pop(os.getpid(), None)
    if provider is not None:
        provider.shutdown()


def parent_from(traceparent: bytes | None) -> Context | None:
    """The client's W3C trace context, when it sent a valid one."""
    if not traceparent:
        return None
    parts = traceparent.strip().split(b"-")
    if len(parts) != 4 or parts[0] != b"00" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id = int(parts[1], 16)
        span_id = int(parts[2], 16)
        flags = int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def traceparent_of(span: trace.Span) -> bytes:
    """The W3C header that carries `span` to the upstream."""
    context = span.get_span_context()
    return b"00-%032x-%016x-%02x" % (context.trace_id, context.span_id, context.trace_flags)


def attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts (no None)."""
    return {k: v for k, v in values.items() if v is not None}
