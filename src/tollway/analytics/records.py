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
from typing import Any

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
    ) = record
    ts = datetime.fromtimestamp(started + clock_offset, UTC)
    end = finished or started
    tokens = tokens_of(usage) if isinstance(usage, Mapping) else (0, 0, 0, 0, 0)
    provider_name = _text(provider, 63)
    served = _text(model_served, 200)
    return Row(
        day=ts.date(),
        record_id=f"{prefix}{seq:x}"[:40],
        ts=ts,
        request_id=_text(request_id, 200),
        trace_id=trace_id(traceparent),
        team_id=int(team_id),
        app_id=int(app_id),
        key_id=int(key_id),
        key_name=_text(key_name, 200),
        service_id=int(service_id),
        service_team_id=int(service_team_id),
        service_version=int(service_version),
        api=_text(api, 40),
        model=_text(model, 200),
        model_served=served,
        provider=provider_name,
        deployment=_text(deployment or (f"{provider_name}/{served}" if provider_name else ""), 300),
        stream=bool(stream),
        status=int(status),
        error_code=_text(error_code, 100),
        outcome=_text(outcome, 32),
        refused_by=_text(refused_by, 63),
        latency_ms=max(0.0, (end - started) * 1000),
        upstream_ms=max(0.0, (end - upstream_started) * 1000) if upstream_started else None,
        ttft_ms=max(0.0, (first_byte - started) * 1000) if first_byte else None,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cached_tokens=tokens[2],
        cache_write_tokens=tokens[3],
        reasoning_tokens=tokens[4],
        cost=_decimal(cost),
        retries=max(0, int(attempts) - 1),
        cache_hit=bool(cache_hit),
        client_address=_text(client_address, 64),
        user_agent=_text(user_agent, 300),
        request_body=_clean(request_body) if request_body is not None else None,
        response_body=_clean(response_body) if response_body is not None else None,
    )


def tokens_of(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """(input, output, cached input, cache writes, reasoning) from canonical usage."""
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    written = _int(usage.get("cache_creation_input_tokens"))
    out_details = usage.get("completion_tokens_details")
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, Mapping) else 0
    return prompt, completion, cached, written, reasoning


def trace_id(traceparent: bytes | str | None) -> str:
    """The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), else ''."""
    if not traceparent:
        return ""
    text = traceparent.decode("latin-1") if isinstance(traceparent, bytes) else traceparent
    parts = text.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return ""
    candidate = parts[1].lower()
    if candidate == "0" * 32 or any(c not in "0123456789abcdef" for c in candidate):
        return ""
    return candidate


def _int(value: object) -> int:
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
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return _clean(text)[:limit]
