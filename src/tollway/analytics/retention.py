"""How long records, rollups and events are kept, and their removal (hourly, by the
recorder).

Records: each service's `retention_days` (GET/PUT /services/{id}/recording), else the
gateway's default (30 days; TOLLWAY_RECORD_RETENTION_DAYS). On PostgreSQL whole daily
partitions older than the longest retention are dropped; shorter retentions are DELETEs by
service. Rollups: minutes 8 days, hours 400 days, days for good. Events: 400 days.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnClause, delete, literal_column, select, text

from tollway.analytics.rollups import GRAIN_RETENTION
from tollway.analytics.storage import RecordWriter
from tollway.store.database import Store
from tollway.store.engine import WRITE
from tollway.store.metering_schema import (
    PARTITION_SCHEMA,
    Event,
    ServiceRecording,
    call_records,
    rollups,
)

log = logging.getLogger("tollway.analytics")

DEFAULT_RECORD_DAYS = 30
EVENT_DAYS = 400
# Deleted in slices, so that no transaction holds the SQLite write lock for long.
_SLICE = 20000


@dataclass(frozen=True, slots=True)
class Removed:
    records: int
    partitions: int


def apply(store: Store, writer: RecordWriter, default_days: int, now: datetime) -> Removed:
    """Removes what is past its retention."""
    today = now.astimezone(UTC).date()
    with store.read() as session:
        overrides = {
            service_id: days
            for service_id, days in session.execute(
                select(ServiceRecording.service_id, ServiceRecording.retention_days).where(
                    ServiceRecording.retention_days.is_not(None)
                )
            )
            if days is not None
        }
    longest = max([default_days, *overrides.values()])
    partitions = 0
    removed = 0
    if writer.postgres:
        partitions = _drop_partitions(store, writer, today - timedelta(days=longest))
    else:
        removed += _delete_records(store, call_records.c.day < today - timedelta(days=longest))
    for service_id, days in overrides.items():
        if days < longest:
            cutoff = today - timedelta(days=days)
            removed += _delete_records(
                store, (call_records.c.service_id == service_id) & (call_records.c.day < cutoff)
            )
    if default_days < longest:
        cutoff = today - timedelta(days=default_days)
        condition = call_records.c.day < cutoff
        if overrides:
            condition = condition & call_records.c.service_id.not_in(list(overrides))
        removed += _delete_records(store, condition)
    engine = store.engine.execution_options(**{WRITE: True})
    with engine.begin() as conn:
        for grain, keep in GRAIN_RETENTION.items():
            table = rollups[grain]
            conn.execute(delete(table).where(table.c.bucket < now - keep))
        conn.execute(delete(Event).where(Event.at < now - timedelta(days=EVENT_DAYS)))
    if removed or partitions:
        log.info("retention: %d records and %d daily partitions removed", removed, partitions)
    return Removed(removed, partitions)


def _delete_records(store: Store, condition: Any) -> int:
    engine = store.engine.execution_options(**{WRITE: True})
    total = 0
    if store.backend == "postgresql":
        with engine.begin() as conn:
            return int(conn.execute(delete(call_records).where(condition)).rowcount or 0)
    # SQLite: by rowid slices.
    rowid: ColumnClause[int] = literal_column("rowid")
    while True:
        with engine.begin() as conn:
            ids = select(rowid).select_from(call_records).where(condition).limit(_SLICE)
            done = conn.execute(delete(call_records).where(rowid.in_(ids))).rowcount
        total += int(done or 0)
        if not done or done < _SLICE:
            return total


def _drop_partitions(store: Store, writer: RecordWriter, before: date) -> int:
    engine = store.engine.execution_options(**{WRITE: True})
    dropped: list[date] = []
    with engine.begin() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE p.relname = 'call_records' AND n.nspname = :s"
            ),
            {"s": PARTITION_SCHEMA},
        ).scalars()
        for name in names:
            try:
                day = datetime.strptime(name.rsplit("_", 1)[1], "%Y%m%d").date()
            except (IndexError, ValueError):
                continue
            if day < before:
                conn.execute(text(f'DROP TABLE IF EXISTS {PARTITION_SCHEMA}."{name}"'))
                dropped.append(day)
    writer.forget_partitions(dropped)
    return len(dropped)
