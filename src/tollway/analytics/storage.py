"""Writing call records, rollups and events to the store, one transaction per batch.

Records are stored once by (day, record id), whatever is replayed: on SQLite the batch's ids
already stored are looked up under the write lock and the rest inserted with executemany; on
PostgreSQL the batch is COPYed into a temporary table and moved with INSERT ... ON CONFLICT DO
NOTHING RETURNING, which says which records are new. Only new records add to the rollups, in
the same transaction, so a batch written twice (its commit's answer lost, say) counts once.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tollway.analytics import wire
from tollway.analytics.records import COLUMNS, Row
from tollway.analytics.rollups import RollupKey, Totals, aggregate
from tollway.store.database import Store
from tollway.store.engine import WRITE
from tollway.store.metering_schema import (
    HISTOGRAM,
    PARTITION_SCHEMA,
    ROLLUP_COUNTS,
    ROLLUP_DIMENSIONS,
    Event,
    Webhook,
    WebhookDelivery,
)
from tollway.store.schema import ApiKey, App, AuditEntry, ConfigState

# Events that are also entries of the audit log, by kind: their action there.
_AUDITED = {"mcp.tool_changed": "mcp_tool_changed"}

log = logging.getLogger("tollway.analytics")

# pg_advisory_xact_lock key for creating partitions: "twparts".
_PARTITION_LOCK = 0x7477706172747300
_SQLITE_CHUNK = 400
_SQLITE_CACHE_KIB = 131072
_ROLLUP_SUMS = (*ROLLUP_COUNTS, "cost", "latency_ms_sum", "ttft_ms_sum", *HISTOGRAM)
_ROLLUP_COLUMNS = ("bucket", *ROLLUP_DIMENSIONS, "service_team_id", *_ROLLUP_SUMS)


@dataclass(frozen=True, slots=True)
class Written:
    fresh: list[Row]  # the records stored now (not stored before)
    duplicates: int  # records already stored (a replay)
    events: int

    @property
    def records(self) -> int:
        return len(self.fresh)


def sqlite_time(moment: datetime) -> str:
    """A UTC time as SQLAlchemy's DateTime keeps it on SQLite (compared as text)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Without its "+00:00" (the year has 4 digits): the naive time's text, without making it.
    return moment.isoformat(" ", "microseconds")[:26]


def partition_name(day: date) -> str:
    return f"{PARTITION_SCHEMA}.call_records_{day:%Y%m%d}"


class RecordWriter:
    """The recorder's handle on the store for writing (one per process)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.postgres = store.backend == "postgresql"
        self._engine = store.engine.execution_options(**{WRITE: True})
        self._partitions: set[date] = set()

    def write(self, rows: Sequence[Row], events: Sequence[wire.Event] = ()) -> Written:
        """Stores the rows and events not stored yet, and their rollups (raises the
        database's error when the store refuses or cannot be reached)."""
        with self._engine.begin() as conn:
            if not self.postgres:
                # The records' indexes outgrow SQLite's default 2 MB page cache quickly.
                conn.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
            fresh = self._records(conn, rows) if rows else []
            if fresh:
                self._rollups(conn, aggregate(fresh))
            stored_events = self._events(conn, events) if events else 0
        return Written(fresh, len(rows) - len(fresh), stored_events)

    # -- records ---------------------------------------------------------------------------

    def _records(self, conn: Connection, rows: Sequence[Row]) -> list[Row]:
        unique: dict[tuple[date, str], Row] = {}
        for row in rows:
            unique.setdefault((row.day, row.record_id), row)
        if self.postgres:
            return self._records_postgres(conn, unique)
        return self._records_sqlite(conn, unique)

    def _records_sqlite(self, conn: Connection, unique: dict[tuple[date, str], Row]) -> list[Row]:
        by_day: dict[date, list[str]] = {}
        for day, record_id in unique:
            by_day.setdefault(day, []).append(record_id)
        stored: set[tuple[date, str]] = set()
        for day, ids in by_day.items():
            for at in range(0, len(ids), _SQLITE_CHUNK):
                chunk = ids[at : at + _SQLITE_CHUNK]
                marks = ",".join("?" * len(chunk))
                found = conn.exec_driver_sql(
                    f"SELECT record_id FROM call_records WHERE day = ? AND record_id IN ({marks})",
                    (day.isoformat(), *chunk),
                )
                stored.update((day, record_id) for (record_id,) in found)
        fresh = [row for key, row in unique.items() if key not in stored]
        if fresh:
            conn.exec_driver_sql(
                f"INSERT INTO call_records ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(COLUMNS))})",
                [_sqlite_values(row) for row in fresh],
            )
        return fresh

    def _records_postgres(self, conn: Connection, unique: dict[tuple[date, str], Row]) -> list[Row]:
        raw: Any = conn.connection.driver_connection
        columns = ", ".join(COLUMNS)
        with raw.cursor() as cursor:
            self.ensure_partitions(cursor, {day for day, _ in unique})
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS incoming_call_records "
                "(LIKE call_records) ON COMMIT DELETE ROWS"
            )
            with cursor.copy(f"COPY incoming_call_records ({columns}) FROM STDIN") as copy:
                for row in unique.values():
                    copy.write_row(row.values())
            cursor.execute(
                f"INSERT INTO call_records ({columns}) SELECT {columns} "
                "FROM incoming_call_records ON CONFLICT DO NOTHING RETURNING day, record_id"
            )
            new = set(cursor.fetchall())
        return [row for key, row in unique.items() if key in new]

    def ensure_partitions(self, cursor: Any, days: Iterable[date]) -> None:
        """PostgreSQL: the daily partitions these days need (created at most once each)."""
        missing = sorted(set(days) - self._partitions)
        if not missing:
            return
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
        for day in missing:
            after = day + timedelta(days=1)
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF call_records "
                f"FOR VALUES FROM ('{day.isoformat()}') TO ('{after.isoformat()}')"
            )
        self._partitions.update(missing)

    def forget_partitions(self, days: Iterable[date]) -> None:
        self._partitions.difference_update(days)

    def prepare_days(self, days: Iterable[date]) -> None:
        """Creates partitions ahead of need (today's and tomorrow's, at start and daily)."""
        if not self.postgres:
            return
        with self._engine.begin() as conn:
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cursor:
                self.ensure_partitions(cursor, days)

    # -- rollups ---------------------------------------------------------------------------

    def _rollups(self, conn: Connection, increments: dict[RollupKey, Totals]) -> None:
        by_grain: dict[str, list[tuple[Any, ...]]] = {}
        postgres = self.postgres
        for key, totals in increments.items():
            bucket: Any = key.bucket if postgres else sqlite_time(key.bucket)
            sums = totals.sums(totals.cost if postgres else str(totals.cost))
            by_grain.setdefault(key.grain, []).append(
                (bucket, *key.dimensions, key.service_team_id, *sums)
            )
        for grain, params in by_grain.items():
            table = f"rollups_{grain}"
            updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _ROLLUP_SUMS)
            conflict = ", ".join(("bucket", *ROLLUP_DIMENSIONS))
            columns = ", ".join(_ROLLUP_COLUMNS)
            if self.postgres:
                # COPY the increments in, then one upsert: far fewer round trips than a row
                # at a time.
                raw: Any = conn.connection.driver_connection
                incoming = f"incoming_{table}"
                with raw.cursor() as cursor:
                    cursor.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {incoming} (LIKE {table}) "
                        "ON COMMIT DELETE ROWS"
                    )
                    with cursor.copy(f"COPY {incoming} ({columns}) FROM STDIN") as copy:
                        for values in params:
                            copy.write_row(values)
                    cursor.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {incoming} "
                        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
                    )
            else:
                marks = ", ".join(["?"] * len(_ROLLUP_COLUMNS))
                conn.exec_driver_sql(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
                    f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
                    params,
                )

    # -- events ----------------------------------------------------------------------------

    def _events(self, conn: Connection, events: Sequence[wire.Event]) -> int:
        insert = pg_insert if self.postgres else sqlite_insert
        hooks = list(conn.execute(select(Webhook).where(Webhook.enabled.is_(True))))
        now = datetime.now(UTC)
        stored = 0
        for event in events:
            team_id = event.team_id or self._team_of(conn, event.app_id, event.key_id)
            result = conn.execute(
                insert(Event)
                .values(
                    event_id=event.event_id[:40],
                    at=datetime.fromtimestamp(event.at, UTC),
                    kind=event.kind[:100],
                    team_id=team_id,
                    app_id=event.app_id,
                    key_id=event.key_id,
                    payload=event.payload,
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(Event.id)
            ).first()
            if result is None:
                continue
            stored += 1
            if event.kind in _AUDITED:
                self._audit(conn, event, team_id)
            for hook in hooks:
                if hook.team_id is not None and hook.team_id != team_id:
                    continue
                if not any(fnmatch.fnmatchcase(event.kind, kind) for kind in hook.kinds):
                    continue
                conn.execute(
                    insert(WebhookDelivery)
                    .values(
                        event_id=result[0],
                        webhook_id=hook.id,
                        attempts=0,
                        next_at=now,
                        last_error="",
                        created_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["event_id", "webhook_id"])
                )
        return stored

    @staticmethod
    def _audit(conn: Connection, event: wire.Event, team_id: int) -> None:
        """An event that is also a change for the audit log: the gateway noticed it."""
        payload = event.payload
        version = conn.execute(select(ConfigState.version).where(ConfigState.id == 1)).scalar()
        conn.execute(
            AuditEntry.__table__.insert().values(  # type: ignore[attr-defined]
                at=datetime.fromtimestamp(event.at, UTC),
                actor_id=None,
                actor="gateway",
                action=_AUDITED[event.kind],
                entity_type="service",
                entity_id=payload.get("service_id"),
                entity_name=str(payload.get("service", ""))[:300],
                team_id=team_id or None,
                related_team_id=None,
                config_version=version or 0,
                changes=payload,
            )
        )

    @staticmethod
    def _team_of(conn: Connection, app_id: int, key_id: int) -> int:
        """The team of an event reported for an app or a key only (its webhooks and its
        members should see it)."""
        if key_id and not app_id:
            found = conn.execute(select(ApiKey.app_id).where(ApiKey.id == key_id)).scalar()
            app_id = int(found or 0)
        if not app_id:
            return 0
        team = conn.execute(select(App.team_id).where(App.id == app_id)).scalar()
        return int(team or 0)


_COST = COLUMNS.index("cost")
# The columns stored as they are: all but day, ts and cost (text on SQLite).
_PLAIN_BEFORE_COST = attrgetter(*COLUMNS[3:_COST])
_PLAIN_AFTER_COST = attrgetter(*COLUMNS[_COST + 1 :])


def _sqlite_values(row: Row) -> tuple[Any, ...]:
    cost = row.cost
    return (
        row.day.isoformat(),
        row.record_id,
        sqlite_time(row.ts),
        *_PLAIN_BEFORE_COST(row),
        str(cost) if cost is not None else None,
        *_PLAIN_AFTER_COST(row),
    )
