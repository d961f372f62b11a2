"""Reading analytics back: totals, breakdowns and time series from the rollups, and call
records themselves, always within what the reader may see.

A team member sees the calls of its teams' apps and the calls to its teams' services;
a platform admin sees everything (`team_ids` None). Totals and breakdowns over any range read
the rollups in the fewest rows (rollups.pieces); time series read one grain's rollups.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, false, func, or_, select, union_all
from sqlalchemy.orm import Session

from tollway.analytics.rollups import Totals, ceil, floor, pieces
from tollway.store.metering_schema import (
    HISTOGRAM,
    ROLLUP_COUNTS,
    Event,
    call_records,
    rollups,
)
from tollway.store.schema import ApiKey, App, Service, Team

SUMS = (*ROLLUP_COUNTS, "cost", "latency_ms_sum", "ttft_ms_sum", *HISTOGRAM)
# What breakdowns and series group by, and the column of each.
DIMENSIONS = {
    "team": "team_id",
    "app": "app_id",
    "key": "key_id",
    "service": "service_id",
    "model": "model",
    "provider": "provider",
    "status": "status",
}
OTHER = "_other"
# The record columns a search lists (a record's detail adds its bodies).
LISTED = tuple(c for c in call_records.c if c.name not in ("request_body", "response_body"))


@dataclass(frozen=True, slots=True)
class Filters:
    team_id: int | None = None
    app_id: int | None = None
    key_id: int | None = None
    service_id: int | None = None
    model: str | None = None
    provider: str | None = None
    status: int | None = None


def _scoped(table: Table, team_ids: Collection[int] | None) -> list[ColumnElement[bool]]:
    if team_ids is None:
        return []
    ids = list(team_ids)
    if not ids:
        return [false()]
    return [or_(table.c.team_id.in_(ids), table.c.service_team_id.in_(ids))]


def _filtered(table: Table, filters: Filters) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for name in ("team_id", "app_id", "key_id", "service_id", "model", "provider", "status"):
        value = getattr(filters, name)
        if value is not None:
            out.append(table.c[name] == value)
    return out


def _totals(values: Sequence[Any]) -> Totals:
    """Totals from the SUMs of a row, in SUMS order."""
    sums = dict(zip(SUMS, values, strict=True))
    return Totals(
        requests=int(sums["requests"] or 0),
        errors=int(sums["errors"] or 0),
        cache_hits=int(sums["cache_hits"] or 0),
        input_tokens=int(sums["input_tokens"] or 0),
        output_tokens=int(sums["output_tokens"] or 0),
        cached_tokens=int(sums["cached_tokens"] or 0),
        cache_write_tokens=int(sums["cache_write_tokens"] or 0),
        reasoning_tokens=int(sums["reasoning_tokens"] or 0),
        context_saved_tokens=int(sums["context_saved_tokens"] or 0),
        ttft_count=int(sums["ttft_count"] or 0),
        cost=money(sums["cost"]),
        latency_ms_sum=float(sums["latency_ms_sum"] or 0.0),
        ttft_ms_sum=float(sums["ttft_ms_sum"] or 0.0),
        histogram=[int(sums[name] or 0) for name in HISTOGRAM],
    )


def money(value: object) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # SQLite sums NUMERIC columns as floats: what they carry is 12 decimals at most.
        return Decimal(f"{value:.12f}")
    return Decimal(str(value))


def grouped(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    team_ids: Collection[int] | None,
    filters: Filters = Filters(),
    by: Sequence[str] = (),
) -> list[tuple[tuple[Any, ...], Totals]]:
    """Totals over [start, end) per value of the `by` dimensions (no `by`: one row)."""
    now = datetime.now(UTC)
    parts: list[Select[Any]] = []
    columns = [DIMENSIONS[b] for b in by]
    for grain, lo, hi in pieces(start, end, now):
        table = rollups[grain]
        parts.append(
            select(*(table.c[c] for c in columns), *(table.c[s] for s in SUMS)).where(
                table.c.bucket >= lo,
                table.c.bucket < hi,
                *_scoped(table, team_ids),
                *_filtered(table, filters),
            )
        )
    if not parts:
        return []
    source = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    keys = [source.c[c] for c in columns]
    query = select(*keys, *(func.sum(source.c[s]) for s in SUMS))
    if keys:
        query = query.group_by(*keys)
    out = []
    for row in session.execute(query):
        totals = _totals(row[len(keys) :])
        if totals.requests:
            out.append((tuple(row[: len(keys)]), totals))
    return out


def summary(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    team_ids: Collection[int] | None,
    filters: Filters = Filters(),
) -> Totals:
    found = grouped(session, start, end, team_ids=team_ids, filters=filters)
    return found[0][1] if found else Totals()


def breakdown(
    session: Session,
    start: datetime,
    end: datetime,
    by: str,
    *,
    team_ids: Collection[int] | None,
    filters: Filters = Filters(),
    limit: int = 20,
) -> list[tuple[Any, Totals]]:
    """Totals per value of one dimension, busiest first."""
    found = grouped(session, start, end, team_ids=team_ids, filters=filters, by=(by,))
    found.sort(key=lambda item: (-item[1].requests, str(item[0][0])))
    return [(values[0], totals) for values, totals in found[:limit]]


def series(
    session: Session,
    start: datetime,
    end: datetime,
    step: str,
    *,
    team_ids: Collection[int] | None,
    filters: Filters = Filters(),
    by: str | None = None,
    top: int = 10,
) -> list[tuple[datetime, Any, Totals]]:
    """Totals per `step` (minute, hour or day) bucket, and per value of `by` (its `top`
    busiest values over the range; the rest together as "_other")."""
    table = rollups[step]
    lo, hi = floor(start, step), ceil(end, step)
    keys = [table.c.bucket] + ([table.c[DIMENSIONS[by]]] if by else [])
    query = (
        select(*keys, *(func.sum(table.c[s]) for s in SUMS))
        .where(
            table.c.bucket >= lo,
            table.c.bucket < hi,
            *_scoped(table, team_ids),
            *_filtered(table, filters),
        )
        .group_by(*keys)
        .order_by(table.c.bucket)
    )
    rows = [
        (row[0], row[1] if by else None, _totals(row[len(keys) :]))
        for row in session.execute(query)
    ]
    if not by:
        return rows
    volume: dict[Any, int] = {}
    for _, value, totals in rows:
        volume[value] = volume.get(value, 0) + totals.requests
    kept = set(sorted(volume, key=lambda v: (-volume[v], str(v)))[:top])
    out: dict[tuple[datetime, Any], Totals] = {}
    for bucket, value, totals in rows:
        key = (bucket, value if value in kept else OTHER)
        if key in out:
            out[key].merge(totals)
        else:
            out[key] = totals
    return [(bucket, value, totals) for (bucket, value), totals in out.items()]


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordFilters(Filters):
    request_id: str | None = None
    outcome: str | None = None
    errors_only: bool = False


def search(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    team_ids: Collection[int] | None,
    filters: RecordFilters = RecordFilters(),
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """Records newest first, and the cursor of the next page (None: the last page)."""
    table = call_records
    conditions = [
        table.c.ts >= start,
        table.c.ts < end,
        *_scoped(table, team_ids),
        *_filtered(table, filters),
    ]
    if filters.request_id is not None:
        conditions.append(table.c.request_id == filters.request_id)
    if filters.outcome is not None:
        conditions.append(table.c.outcome == filters.outcome)
    if filters.errors_only:
        conditions.append(
            or_(table.c.status >= 400, table.c.outcome.in_(("upstream_error", "timeout", "error")))
        )
    if before is not None:
        at, record_id = before
        conditions.append(
            or_(table.c.ts < at, and_(table.c.ts == at, table.c.record_id < record_id))
        )
    query = (
        select(*LISTED)
        .where(*conditions)
        .order_by(table.c.ts.desc(), table.c.record_id.desc())
        .limit(limit + 1)
    )
    found = [dict(row) for row in session.execute(query).mappings()]
    more = len(found) > limit
    found = found[:limit]
    cursor = (found[-1]["ts"], found[-1]["record_id"]) if more and found else None
    return found, cursor


def record(
    session: Session, record_id: str, *, team_ids: Collection[int] | None
) -> dict[str, Any] | None:
    query = select(call_records).where(
        call_records.c.record_id == record_id, *_scoped(call_records, team_ids)
    )
    row = session.execute(query).mappings().first()
    return dict(row) if row is not None else None


def events(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    team_ids: Collection[int] | None,
    kind: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Event]:
    query = select(Event).where(Event.at >= start, Event.at < end)
    if team_ids is not None:
        query = query.where(Event.team_id.in_(list(team_ids)))
    if kind is not None:
        query = query.where(Event.kind == kind)
    if before_id is not None:
        query = query.where(Event.id < before_id)
    return list(session.scalars(query.order_by(Event.id.desc()).limit(limit)))


# -- names -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Names:
    teams: dict[int, str]
    apps: dict[int, str]
    keys: dict[int, str]
    services: dict[int, str]

    def of(self, dimension: str, value: Any) -> str | None:
        """The display name of a dimension's value (ids of teams, apps, keys, services)."""
        table = {"team": self.teams, "app": self.apps, "key": self.keys, "service": self.services}
        found = table.get(dimension)
        if found is None:
            return None
        return found.get(value) if isinstance(value, int) else None


def names(
    session: Session,
    *,
    teams: Iterable[int] = (),
    apps: Iterable[int] = (),
    keys: Iterable[int] = (),
    services: Iterable[int] = (),
) -> Names:
    """Current names of the ids a result mentions ("team/app", "team/service", key names)."""
    team_names = _lookup(session, select(Team.id, Team.name), Team.id, teams)
    app_names = {
        i: f"{team}/{name}"
        for i, team, name in session.execute(
            select(App.id, Team.name, App.name)
            .join(Team, Team.id == App.team_id)
            .where(App.id.in_(_ids(apps)))
        )
    }
    key_names = _lookup(session, select(ApiKey.id, ApiKey.name), ApiKey.id, keys)
    service_names = {
        i: f"{team}/{name}"
        for i, team, name in session.execute(
            select(Service.id, Team.name, Service.name)
            .join(Team, Team.id == Service.team_id)
            .where(Service.id.in_(_ids(services)))
        )
    }
    return Names(team_names, app_names, key_names, service_names)


def _ids(values: Iterable[int]) -> list[int]:
    return sorted({v for v in values if isinstance(v, int) and v > 0})


def _lookup(
    session: Session, query: Select[int, str], column: Any, ids: Iterable[int]
) -> dict[int, str]:
    wanted = _ids(ids)
    if not wanted:
        return {}
    return {int(i): str(n) for i, n in session.execute(query.where(column.in_(wanted)))}
