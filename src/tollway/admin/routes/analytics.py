"""/analytics: what the calls did, over any range, within what the caller may see (a team
member: its teams' apps' calls and calls to its teams' services; a platform admin: all).

Totals, breakdowns and series come from the rollups (minute, hour and day), so they answer
quickly over any number of records; record search and detail read the records themselves.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, Field

from tollway.admin.auth import Ctx
from tollway.admin.schemas import EARLIEST, LATEST, IdFilter, Limit, Out
from tollway.analytics import queries
from tollway.analytics.rollups import Totals
from tollway.store.errors import Invalid, NotFound

router = APIRouter(tags=["analytics"])

When = Annotated[
    AwareDatetime | None, Query(description="ISO 8601 with a time zone, e.g. 2025-06-01T00:00Z")
]
Word = Annotated[str | None, Query(min_length=1, max_length=200)]
Status = Annotated[int | None, Query(ge=0, le=999, description="the HTTP status answered")]
Dimension = Literal["team", "app", "key", "service", "model", "provider", "status"]
Step = Literal["minute", "hour", "day"]


class Latency(Out):
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class Stats(Out):
    requests: int
    errors: int
    error_rate: float
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    context_saved_tokens: int = Field(
        description="input tokens that fitting kept conversations to their models saved "
        "(estimates: the whole histories' less what was sent)"
    )
    cost: str = Field(description="USD, as a decimal string")
    latency_ms: Latency
    ttft_ms_mean: float | None = Field(description="mean time to first token (streams)")


def stats(totals: Totals) -> Stats:
    n = totals.requests

    def p(q: float) -> float | None:
        value = totals.percentile(q)
        return round(value, 3) if value is not None else None

    return Stats(
        requests=n,
        errors=totals.errors,
        error_rate=round(totals.errors / n, 6) if n else 0.0,
        cache_hits=totals.cache_hits,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cached_tokens=totals.cached_tokens,
        cache_write_tokens=totals.cache_write_tokens,
        reasoning_tokens=totals.reasoning_tokens,
        context_saved_tokens=totals.context_saved_tokens,
        cost=_money(totals.cost),
        latency_ms=Latency(
            mean=round(totals.latency_ms_sum / n, 3) if n else None,
            p50=p(0.5),
            p90=p(0.9),
            p95=p(0.95),
            p99=p(0.99),
        ),
        ttft_ms_mean=round(totals.ttft_ms_sum / totals.ttft_count, 3)
        if totals.ttft_count
        else None,
    )


def _money(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value else "0"
    return text


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end): by default the last 24 hours."""
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = (start or end - timedelta(days=1)).astimezone(UTC)
    for field, value in (("start", start), ("end", end)):
        if not EARLIEST <= value <= LATEST:
            raise Invalid.one(field, "must be between the years 2000 and 9000")
    if start >= end:
        raise Invalid.one("start", "must be before end")
    return start, end


def _filters(
    team_id: int | None,
    app_id: int | None,
    key_id: int | None,
    service_id: int | None,
    model: str | None,
    provider: str | None,
    status: int | None,
) -> queries.Filters:
    return queries.Filters(team_id, app_id, key_id, service_id, model, provider, status)


class Summary(Out):
    start: datetime
    end: datetime
    stats: Stats


@router.get("/analytics/summary", response_model=Summary, summary="Totals over a range")
def summary(
    ctx: Ctx,
    start: When = None,
    end: When = None,
    team_id: IdFilter = None,
    app_id: IdFilter = None,
    key_id: IdFilter = None,
    service_id: IdFilter = None,
    model: Word = None,
    provider: Word = None,
    status: Status = None,
) -> Summary:
    """Requests, errors, latency percentiles, tokens, cost and cache hits over [start, end)
    (default: the last 24 hours), at minute resolution."""
    lo, hi = _range(start, end)
    filters = _filters(team_id, app_id, key_id, service_id, model, provider, status)
    with ctx.store.read() as session:
        totals = queries.summary(
            session, lo, hi, team_ids=ctx.principal.team_ids(), filters=filters
        )
    return Summary(start=lo, end=hi, stats=stats(totals))


class Group(Out):
    value: str | int | None
    name: str | None = Field(description="the team, app, key or service's current name")
    stats: Stats


class Breakdown(Out):
    by: str
    start: datetime
    end: datetime
    groups: list[Group]


def _named(session: Any, by: str, values: list[Any]) -> queries.Names:
    ids = [v for v in values if isinstance(v, int)]
    return queries.names(
        session,
        teams=ids if by == "team" else (),
        apps=ids if by == "app" else (),
        keys=ids if by == "key" else (),
        services=ids if by == "service" else (),
    )


@router.get("/analytics/breakdown", response_model=Breakdown, summary="Totals per dimension")
def breakdown(
    ctx: Ctx,
    by: Annotated[Dimension, Query(description="what to group by")],
    start: When = None,
    end: When = None,
    team_id: IdFilter = None,
    app_id: IdFilter = None,
    key_id: IdFilter = None,
    service_id: IdFilter = None,
    model: Word = None,
    provider: Word = None,
    status: Status = None,
    limit: Limit = 20,
) -> Breakdown:
    """The same totals per team, app, key, service, model, provider or status, busiest
    first. Calls of keys outside any app show as team, app and key 0."""
    lo, hi = _range(start, end)
    filters = _filters(team_id, app_id, key_id, service_id, model, provider, status)
    with ctx.store.read() as session:
        found = queries.breakdown(
            session, lo, hi, by, team_ids=ctx.principal.team_ids(), filters=filters, limit=limit
        )
        named = _named(session, by, [value for value, _ in found])
    return Breakdown(
        by=by,
        start=lo,
        end=hi,
        groups=[Group(value=v, name=named.of(by, v), stats=stats(t)) for v, t in found],
    )


class Point(Out):
    at: datetime
    value: str | int | None = Field(description="the group's value, when grouped")
    name: str | None
    stats: Stats


class Series(Out):
    step: str
    by: str | None
    start: datetime
    end: datetime
    points: list[Point]


@router.get("/analytics/timeseries", response_model=Series, summary="Totals per time step")
def timeseries(
    ctx: Ctx,
    start: When = None,
    end: When = None,
    step: Annotated[
        Step | None, Query(description="default: minute up to 6 h, hour up to 14 days, else day")
    ] = None,
    by: Annotated[Dimension | None, Query(description="one series per value")] = None,
    top: Annotated[int, Query(ge=1, le=50, description="series kept when grouped")] = 10,
    team_id: IdFilter = None,
    app_id: IdFilter = None,
    key_id: IdFilter = None,
    service_id: IdFilter = None,
    model: Word = None,
    provider: Word = None,
    status: Status = None,
) -> Series:
    """Buckets without calls are left out. Minute steps reach back 8 days, hour steps 400."""
    lo, hi = _range(start, end)
    span = hi - lo
    if step is None:
        step = (
            "minute"
            if span <= timedelta(hours=6)
            else "hour"
            if span <= timedelta(days=14)
            else "day"
        )
    points = {"minute": 60, "hour": 3600, "day": 86400}
    if span.total_seconds() / points[step] > 20000:
        raise Invalid.one("step", f"more than 20000 {step}s: choose a longer step")
    filters = _filters(team_id, app_id, key_id, service_id, model, provider, status)
    with ctx.store.read() as session:
        found = queries.series(
            session,
            lo,
            hi,
            step,
            team_ids=ctx.principal.team_ids(),
            filters=filters,
            by=by,
            top=top,
        )
        named = _named(session, by, [value for _, value, _ in found]) if by else None
    return Series(
        step=step,
        by=by,
        start=lo,
        end=hi,
        points=[
            Point(
                at=at,
                value=value,
                name=named.of(by, value) if named is not None and by is not None else None,
                stats=stats(totals),
            )
            for at, value, totals in found
        ],
    )


# -- records ---------------------------------------------------------------------------------


class RecordOut(Out):
    record_id: str
    ts: datetime
    request_id: str
    trace_id: str
    team_id: int
    app_id: int
    key_id: int
    key_name: str
    service_id: int
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
    request_bytes: int = Field(description="the request body's size (a tool call's arguments)")
    cost: str | None
    retries: int
    cache_hit: bool
    client_address: str
    user_agent: str


class RecordDetail(RecordOut):
    request_body: str | None
    response_body: str | None


class RecordPage(Out):
    items: list[RecordOut]
    next_before: str | None = Field(description="pass as `before` for the next (older) page")


def _record_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in row.items() if k not in ("day", "service_team_id")}
    cost = row.get("cost")
    fields["cost"] = _money(queries.money(cost)) if cost is not None else None
    return fields


def _cursor(value: tuple[datetime, str] | None) -> str | None:
    if value is None:
        return None
    raw = f"{value[0].isoformat()}|{value[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        at, record_id = raw.split("|", 1)
        moment = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError):
        raise Invalid.one("before", "not a cursor given by this API") from None
    if moment.tzinfo is None:
        raise Invalid.one("before", "not a cursor given by this API")
    return moment, record_id


@router.get("/analytics/records", response_model=RecordPage, summary="Search call records")
def search_records(
    ctx: Ctx,
    start: When = None,
    end: When = None,
    team_id: IdFilter = None,
    app_id: IdFilter = None,
    key_id: IdFilter = None,
    service_id: IdFilter = None,
    model: Word = None,
    provider: Word = None,
    status: Status = None,
    request_id: Word = None,
    outcome: Word = None,
    errors: Annotated[bool, Query(description="only failed calls")] = False,
    before: Annotated[str | None, Query(max_length=400)] = None,
    limit: Limit = 50,
) -> RecordPage:
    """Newest first, without bodies (see a record's detail)."""
    lo, hi = _range(start, end)
    filters = queries.RecordFilters(
        team_id, app_id, key_id, service_id, model, provider, status, request_id, outcome, errors
    )
    with ctx.store.read() as session:
        found, cursor = queries.search(
            session,
            lo,
            hi,
            team_ids=ctx.principal.team_ids(),
            filters=filters,
            before=_uncursor(before),
            limit=limit,
        )
    return RecordPage(
        items=[RecordOut(**_record_fields(row)) for row in found], next_before=_cursor(cursor)
    )


@router.get(
    "/analytics/records/{record_id}", response_model=RecordDetail, summary="One call record"
)
def get_record(
    record_id: Annotated[str, Field(min_length=1, max_length=40)], ctx: Ctx
) -> RecordDetail:
    with ctx.store.read() as session:
        row = queries.record(session, record_id, team_ids=ctx.principal.team_ids())
    if row is None:
        raise NotFound("record", record_id)
    return RecordDetail(**_record_fields(row))


class EventOut(Out):
    id: int
    event_id: str
    at: datetime
    kind: str
    team_id: int
    app_id: int
    key_id: int
    payload: dict[str, Any]


class EventPage(Out):
    items: list[EventOut]
    next_before: int | None


@router.get("/analytics/events", response_model=EventPage, summary="Events, newest first")
def list_events(
    ctx: Ctx,
    start: When = None,
    end: When = None,
    kind: Word = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 50,
) -> EventPage:
    """Events policies recorded (budget alerts, ...): a team member sees its teams'."""
    lo, hi = _range(start, end)
    with ctx.store.read() as session:
        found = queries.events(
            session,
            lo,
            hi,
            team_ids=ctx.principal.team_ids(),
            kind=kind,
            before_id=before,
            limit=limit + 1,
        )
    more = len(found) > limit
    found = found[:limit]
    return EventPage(
        items=[
            EventOut(
                id=e.id,
                event_id=e.event_id,
                at=e.at,
                kind=e.kind,
                team_id=e.team_id,
                app_id=e.app_id,
                key_id=e.key_id,
                payload=e.payload,
            )
            for e in found
        ],
        next_before=found[-1].id if more and found else None,
    )
