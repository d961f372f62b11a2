"""What a worker ships to the recorder: messages of call records, events and reports.

A call record leaves the worker as a flat tuple of plain values (`RECORD_FIELDS`, in that
order), built from the call's `RequestContext` when the sink flushes, not in the done phase:
the done phase only keeps a reference to the context. Nothing secret is copied: of the request
headers only the user agent and the W3C `traceparent` are read; bodies, when a service records
them, are redacted before they are encoded.

A message is one datagram on the channel (a SOCK_SEQPACKET socket pair the supervisor makes
before it forks) or one frame of a spool file: a kind byte and a MessagePack payload (msgspec:
about 0.2 us a record, against 0.5 us for marshal and pickle). A record's cost is a Decimal,
which MessagePack carries as its decimal string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from tollway.analytics.redaction import Redactor
    from tollway.policies.context import IncomingRequest, RequestContext


# The message kinds (first byte).
RECORDS = b"R"
EVENTS = b"E"
REPORT = b"P"
_VERSION = 1

# The fields of a call record on the wire, in order.
RECORD_FIELDS = (
    "seq",  # the worker's counter: with its prefix, the record id
    "started",  # monotonic times: the call's start, upstream request sent, first byte, end
    "upstream_started",
    "first_byte",
    "finished",
    "request_id",
    "traceparent",
    "user_agent",
    "client_address",
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
    "usage",
    "cost",  # a Decimal (a decimal string once decoded), or None
    "attempts",
    "cache_hit",
    "request_body",
    "response_body",
    # Added later: a record spooled before it has one field less (analytics/records.py).
    "saved_tokens",  # input tokens a kept conversation's fitting saved (estimate)
    "request_bytes",  # the request body's size, as it arrived
)
FIELD = {name: i for i, name in enumerate(RECORD_FIELDS)}

WireRecord = tuple[Any, ...]


def from_context(ctx: RequestContext, seq: int, redactor: Redactor | None = None) -> WireRecord:
    """The record of one finished call (see RECORD_FIELDS)."""
    request = ctx.request
    user_agent = traceparent = None
    for name, value in request.headers:
        if name == b"user-agent":
            user_agent = value
        elif name == b"traceparent":
            traceparent = value
    key = ctx.key
    key_name: str | None = None
    if key is not None:
        app = key.app
        key_name = key.name
        key_id = key.key_id
        team_id, app_id = (app.team_id, app.id) if app is not None else (0, 0)
    else:
        team_id = app_id = key_id = 0
    service = ctx.service
    if service is not None:
        service_id, service_team_id, service_version = service.id, service.team_id, service.version
    else:
        service_id = service_team_id = service_version = 0
    deployment = ctx.deployment
    provider: str | None = None
    served: str | None = None
    label: str | None = None
    if deployment is not None:
        provider = deployment.provider.name
        served = deployment.model or ctx.model
        label = deployment.label
    route = ctx.route
    api = route.api if route is not None else None
    request_body: str | None = None
    response_body: str | None = None
    if redactor is not None and service is not None and service.capture is not None:
        request_body, response_body = redactor.bodies(ctx, service.capture)
    return (
        seq,
        ctx.started_at,
        ctx.upstream_started_at,
        ctx.first_byte_at,
        ctx.finished_at,
        request.request_id,
        traceparent,
        user_agent,
        request.client_address,
        team_id,
        app_id,
        key_id,
        key_name,
        service_id,
        service_team_id,
        service_version,
        api.name if api is not None else (route.handler if route is not None else ""),
        ctx.model,
        served,
        provider,
        label,
        ctx.stream,
        ctx.status,
        ctx.error_code,
        ctx.outcome,
        ctx.refused_by,
        ctx.usage,
        ctx.cost,
        ctx.attempts,
        ctx.cache_hit,
        request_body,
        response_body,
        ctx.saved_tokens,
        _request_bytes(request),
    )


def _request_bytes(request: IncomingRequest) -> int:
    upload = getattr(request, "upload", None)
    received = upload.received if upload is not None else 0
    return max(received, len(request.body))


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Records of one worker: `prefix` + the hex of a record's seq is its id; a monotonic time
    plus `clock_offset` is seconds since the epoch on the worker's clock."""

    prefix: str
    clock_offset: float
    records: list[WireRecord]
    pid: int


@dataclass(frozen=True, slots=True)
class Event:
    """Something a policy reports for the record (a budget threshold crossed, say)."""

    event_id: str
    at: float  # seconds since the epoch
    kind: str
    payload: dict[str, Any]
    team_id: int = 0
    app_id: int = 0
    key_id: int = 0


# A model deployment's state in one worker: model, deployment label, breaker state (closed,
# open, half_open), failures in a row, calls in flight, latency average (s), seconds left open.
DeploymentRow = tuple[str, str, str, int, int, float, float]


@dataclass(frozen=True, slots=True)
class Report:
    """A worker's periodic state: its calls in flight (0 and `last` as it exits), and its
    model deployments' circuit breakers and load."""

    pid: int
    in_flight: int
    at: float
    last: bool = False
    deployments: tuple[DeploymentRow, ...] = ()


Message = RecordBatch | list[Event] | Report


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode_records(batch: RecordBatch) -> bytes:
    return RECORDS + _encoder.encode(
        (_VERSION, batch.prefix, batch.clock_offset, batch.pid, batch.records)
    )


def encode_events(events: Sequence[Event]) -> bytes:
    return EVENTS + _encoder.encode(
        (
            _VERSION,
            [(e.event_id, e.at, e.kind, e.payload, e.team_id, e.app_id, e.key_id) for e in events],
        )
    )


def encode_report(report: Report) -> bytes:
    return REPORT + _encoder.encode(
        (_VERSION, report.pid, report.in_flight, report.at, report.last, report.deployments)
    )


class BadMessage(ValueError):
    """A message this Tollway cannot read (a torn spool frame, another version's format)."""


def decode(data: bytes) -> Message:
    if not data:
        raise BadMessage("empty message")
    kind, body = data[:1], data[1:]
    try:
        value = _decoder.decode(body)
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise BadMessage(f"unreadable {kind!r} message: {exc}") from None
    if not isinstance(value, list) or not value or value[0] != _VERSION:
        raise BadMessage(f"a {kind!r} message of an unknown version")
    if kind == RECORDS:
        _, prefix, offset, pid, records = value
        return RecordBatch(prefix, offset, records, pid)
    if kind == EVENTS:
        return [Event(*fields) for fields in value[1]]
    if kind == REPORT:
        _, pid, in_flight, at, last, deployments = value
        return Report(pid, in_flight, at, last, tuple(tuple(row) for row in deployments))
    raise BadMessage(f"unknown message kind {kind!r}")
