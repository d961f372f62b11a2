"""Call records as the store keeps them: wire records (analytics/wire.py) made into rows.

Done in the recorder, never in a worker: timestamps from the worker's monotonic clock,
latencies, the token counts from the canonical usage, the trace id from the W3C traceparent,
and every text cut to its column and cleaned of what a database refuses (NUL characters).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from tollway.analytics.wire import RecordBatch

# The columns of call_records, in the order rows are built and inserted.
COLUMNS = (
    "day",
    "record_id",
    "ts",
    "request_id",
    "trace_id",
    "team_id",
    "app_id",
    "key_id",
    "key_name",
    "service_id",
    "service_team_id",
    "service_version",
    "api",
    "model",
    "model_served",
    "provider",
    "deployment",
    "stream",
    "status",
    "error_code",
    "outcome",
    "refused_by",
    "latency_ms",
    "upstream_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "context_saved_tokens",
    "request_bytes",
    "cost",
    "retries",
    "cache_hit",
    "client_address",
    "user_agent",
    "request_body",
    "response_body",
)
_ERROR_OUTCOMES = frozenset({"upstream_error", "timeout", "error"})


@dataclass(slots=True)
class Row:
    """One call record, ready to store (fields as COLUMNS names them)."""

    day: date
    record_id: str
    ts: datetime
    request_id: str
    trace_id: str
    team_id: int
    app_id: int
    key_id: int
    key_name: str
    service_id: int
    service_team_id: int
    service_version: int
    api: str
    model: str
    model_served: str
    provider: str
    deployment: str
    stream: bool
    status: int
    error_code: str
    outcome: str
    refused_by: str
    latency_ms: float
    upstream_ms: float | None
    ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    context_saved_tokens: int
    # The request body's size (an MCP tool call's: its arguments).
    request_bytes: int
    cost: Decimal | None
    retries: int
    cache_hit: bool
    client_address: str
    user_agent: str
    request_body: str | None
    response_body: str | None

    @property
    def is_error(self) -> bool:
        return self.status >= 400 or self.outcome in _ERROR_OUTCOMES

    def values(self) -> tuple[Any, ...]:
        """The row in COLUMNS order."""
        return (
            self.day,
            self.record_id,
            self.ts,
            self.request_id,
            self.trace_id,
            self.team_id,
            self.app_id,
            self.key_id,
            self.key_name,
            self.service_id,
            self.service_team_id,
            self.service_version,
            self.api,
            self.model,
            self.model_served,
            self.provider,
            self.deployment,
            self.stream,
            self.status,
            self.error_code,
            self.outcome,
            self.refused_by,
            self.latency_ms,
            self.upstream_ms,
            self.ttft_ms,
            self.input_tokens,
            self.output_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.context_saved_tokens,
            self.request_bytes,
            self.cost,
            self.retries,
            self.cache_hit,
            self.client_address,
            self.user_agent,
            self.request_body,
            self.response_body,
        )


def rows(batch: RecordBatch) -> Iterator[Row]:
    """The batch's records as rows (a record that cannot be read is skipped)."""
    for record in batch.records:
        try:
            yield row(record, batch.prefix, batch.clock_offset)
        except (TypeError, ValueError, IndexError):
            continue


def row(record: tuple[Any, ...], prefix: str, clock_offset: float) -> Row:
    (
        seq,
        started,
        upstream_started,
        first_byte,
        finished,
        request_id,
        traceparent,
        user_agent,
        client_address,
        team_id,
        app_id,
        key_id,
        key_name,
        service_id,
        service_team_id,
        service_version,
        api,
        model,
        model_served,
        provider,
        deployment,
        stream,
        status,
        error_code,
        outcome,
        refused_by,
        usage,
        cost,
        attempts,
        cache_hit,
        request_body,
        response_body,
    ) = record[:32]
    # A record spooled by an older worker has no saved tokens, or no request size.
    saved = record[32] if len(record) > 32 else 0
    request_bytes = record[33] if len(record) > 33 else 0
    ts = datetime.fromtimestamp(started + clock_offset, UTC)
    end = finished or started
    # Decoded records' maps are dicts: the abstract Mapping check is slow, and only a
    # fallback here.
    tokens = (
        tokens_of(usage)
        if usage.__class__ is dict or isinstance(usage, Mapping)
        else (0, 0, 0, 0, 0)
    )
    provider_name = _text(provider, 63)
    served = _text(model_served, 200)
    # Positional: a dataclass takes 37 keywords three times slower (COLUMNS order).
    return Row(
        ts.date(),
        f"{prefix}{seq:x}"[:40],
        ts,
        _text(request_id, 200),
        trace_id(traceparent),
        int(team_id),
        int(app_id),
        int(key_id),
        _text(key_name, 200),
        int(service_id),
        int(service_team_id),
        int(service_version),
        _text(api, 40),
        _text(model, 200),
        served,
        provider_name,
        _text(deployment or (f"{provider_name}/{served}" if provider_name else ""), 300),
        bool(stream),
        int(status),
        _text(error_code, 100),
        _text(outcome, 32),
        _text(refused_by, 63),
        max(0.0, (end - started) * 1000),
        max(0.0, (end - upstream_started) * 1000) if upstream_started else None,
        max(0.0, (first_byte - started) * 1000) if first_byte else None,
        *tokens,
        max(0, _int(saved)),
        max(0, _int(request_bytes)),
        _decimal(cost),
        max(0, int(attempts) - 1),
        bool(cache_hit),
        _text(client_address, 64),
        _text(user_agent, 300),
        _clean(request_body) if request_body is not None else None,
        _clean(response_body) if response_body is not None else None,
    )


def tokens_of(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """(input, output, cached input, cache writes, reasoning) from canonical usage."""
    get = usage.get
    details = get("prompt_tokens_details")
    out_details = get("completion_tokens_details")
    return (
        _int(get("prompt_tokens")),
        _int(get("completion_tokens")),
        _int(details.get("cached_tokens")) if _is_mapping(details) else 0,
        _int(get("cache_creation_input_tokens")),
        _int(out_details.get("reasoning_tokens")) if _is_mapping(out_details) else 0,
    )


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # Usage details are mostly absent or a dict: the abstract Mapping check (slow) only
    # for anything else.
    return value is not None and (value.__class__ is dict or isinstance(value, Mapping))


_HEX = "0123456789abcdef"


def trace_id(traceparent: bytes | str | None) -> str:
    """The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), else ''."""
    if not traceparent:
        return ""
    text = traceparent.decode("latin-1") if isinstance(traceparent, bytes) else traceparent
    parts = text.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return ""
    candidate = parts[1].lower()
    # Nothing left once hex digits are stripped from both ends: hex digits only.
    if candidate == "0" * 32 or candidate.strip(_HEX):
        return ""
    return candidate


def _int(value: object) -> int:
    if value.__class__ is int:
        return value if value > 0 else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _clean(text: str) -> str:
    return text.replace("\x00", "")


def _text(value: object, limit: int) -> str:
    if value.__class__ is str:
        # No copy when there is nothing to clean or cut.
        return value.replace("\x00", "")[:limit]
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return _clean(text)[:limit]
