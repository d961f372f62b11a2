"""The recorder's writer thread: batches of records and events into the store, and when the
store cannot take them, into the recorder's spool, replayed when it can.

It never loses a batch it was handed: a batch is in memory, in the store, or in a spool file.
A store that fails (unreachable, locked, timing out) is left alone for a while (0.5 s, doubling
to 5 s) while batches go to the spool; the next write that succeeds replays every spool
file, the workers' included. A batch the store refuses for its content (a bad row) is split
until the bad rows are found; those are logged and dropped, the rest stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import exc as sa_errors
from sqlalchemy import select

from tollway.analytics import records, retention, spool, wire
from tollway.analytics.metrics import Metrics
from tollway.analytics.records import Row
from tollway.analytics.storage import RecordWriter, Written
from tollway.store.database import Store
from tollway.store.errors import StoreError
from tollway.store.schema import Service, Team

log = logging.getLogger("tollway.analytics")

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 5.0
_RETENTION_EVERY_S = 3600.0
_NAMES_EVERY_S = 30.0


class Unavailable(Exception):
    """The store cannot take writes now (it may later)."""


@dataclass
class Pending:
    batches: list[wire.RecordBatch] = field(default_factory=list)
    events: list[wire.Event] = field(default_factory=list)
    records: int = 0
    since: float = 0.0

    def add(self, item: wire.RecordBatch | list[wire.Event]) -> None:
        if not self.batches and not self.events:
            self.since = time.monotonic()
        if isinstance(item, wire.RecordBatch):
            self.batches.append(item)
            self.records += len(item.records)
        else:
            self.events.extend(item)

    def __bool__(self) -> bool:
        return bool(self.batches or self.events)


class SharedSpool:
    """The recorder's spool writer, shared by its threads."""

    def __init__(self, directory: Path | None, metrics: Metrics) -> None:
        self.directory = directory
        self._writer = spool.SpoolWriter(directory, "r") if directory is not None else None
        self._lock = threading.Lock()
        self._metrics = metrics

    def put(self, batches: Sequence[wire.RecordBatch], events: Sequence[wire.Event]) -> None:
        count = sum(len(b.records) for b in batches)
        if self._writer is None:
            self._metrics.count("tollway_records_dropped_total", count)
            log.error("no spool directory: %d records and %d events lost", count, len(events))
            return
        with self._lock:
            try:
                for batch in batches:
                    self._writer.append(wire.encode_records(batch))
                if events:
                    self._writer.append(wire.encode_events(events))
            except OSError as exc:
                self._metrics.count("tollway_records_dropped_total", count)
                log.error("cannot spool %d records: %s", count, exc)
                return
        self._metrics.count("tollway_records_spooled_total", count)

    def seal(self) -> None:
        if self._writer is None:
            return
        with self._lock:
            try:
                self._writer.seal()
            except OSError as exc:
                log.error("cannot close the recorder's spool file: %s", exc)


class Ingest:
    """Runs in a thread of the recorder: `put` hands it work, `finish` ends it."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        metrics: Metrics,
        shared_spool: SharedSpool,
        *,
        retention_days: int = retention.DEFAULT_RECORD_DAYS,
        flush_interval_s: float = 0.2,
        max_batch: int = 5000,
    ) -> None:
        self._open_store = open_store
        self.metrics = metrics
        self.spool = shared_spool
        self.retention_days = retention_days
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.queue: queue.Queue[wire.RecordBatch | list[wire.Event]] = queue.Queue()
        self.queued = 0  # records waiting in the queue
        self._lock = threading.Lock()
        self.store: Store | None = None
        self.writer: RecordWriter | None = None
        self.healthy = False
        self._retry_at = 0.0
        self._backoff = _FIRST_BACKOFF_S
        self._next_retention = 0.0
        self._next_names = 0.0
        self._prepared: date | None = None
        self._finishing = threading.Event()
        self._last_try_failed = False
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self.names: dict[int, str] = {}
        # What the thread holds while it writes (for `abandon`).
        self._in_hand = Pending()

    # -- the intake's side -------------------------------------------------------------------

    def put(self, item: wire.RecordBatch | list[wire.Event]) -> None:
        if isinstance(item, wire.RecordBatch):
            with self._lock:
                self.queued += len(item.records)
        self.queue.put(item)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tollway-ingest", daemon=True)
        self._thread.start()

    def finish(self, timeout_s: float) -> bool:
        """Write (or spool) everything handed over, replay the spool if the store takes it;
        True when done within the time."""
        self._deadline = time.monotonic() + timeout_s
        self._finishing.set()
        if self._thread is not None:
            self._thread.join(timeout_s + 1)
            return not self._thread.is_alive()
        return True

    def abandon(self) -> tuple[list[wire.RecordBatch], list[wire.Event]]:
        """Everything not known to be stored or spooled, for the caller to spool when the
        thread is stuck past its deadline (a store that hangs). Spooling a batch twice is
        harmless: it is stored once."""
        batches = list(self._in_hand.batches)
        events = list(self._in_hand.events)
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return batches, events
            if isinstance(item, wire.RecordBatch):
                batches.append(item)
            else:
                events.extend(item)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        pending = Pending()
        while True:
            finishing = self._finishing.is_set()
            try:
                item = self.queue.get(timeout=0.05 if finishing else self.flush_interval_s)
            except queue.Empty:
                item = None
            if item is not None:
                self._in_hand = pending
                self._take(pending, item)
                while pending.records < self.max_batch:
                    try:
                        self._take(pending, self.queue.get_nowait())
                    except queue.Empty:
                        break
            due = time.monotonic() - pending.since >= self.flush_interval_s
            if pending and (pending.records >= self.max_batch or due or finishing):
                self._in_hand = pending
                try:
                    self._flush(pending)
                except Exception:
                    # A bug, not the store: keep the batch for a later replay.
                    log.exception("writing call records failed; spooling them")
                    self.spool.put(pending.batches, pending.events)
                pending = self._in_hand = Pending()
            if finishing and self.queue.empty() and not pending:
                self._closing()
                return
            if not finishing:
                try:
                    self._maintain()
                except Exception:
                    log.exception("the recorder's upkeep failed")

    def _take(self, pending: Pending, item: wire.RecordBatch | list[wire.Event]) -> None:
        if isinstance(item, wire.RecordBatch):
            with self._lock:
                self.queued -= len(item.records)
        pending.add(item)

    def _flush(self, pending: Pending) -> None:
        finishing = self._finishing.is_set()
        if not self._ready(force=finishing and not self._last_try_failed):
            self.spool.put(pending.batches, pending.events)
            return
        rows = [row for batch in pending.batches for row in records.rows(batch)]
        try:
            self._write(rows, pending.events)
        except Unavailable as exc:
            self._down(str(exc))
            self._last_try_failed = finishing
            self.spool.put(pending.batches, pending.events)
            return
        self._up()

    def _closing(self) -> None:
        """The last chance to empty the spool: the store is tried whatever its back-off."""
        self.spool.seal()
        if self.healthy:
            if time.monotonic() < self._deadline:
                self._replay(until=self._deadline)
            return
        if self._last_try_failed or not self._ready(force=True):
            return
        try:
            self._write([], [])
            self._probe()
        except Unavailable as exc:
            self._down(str(exc))
            return
        self._up()

    # -- the store -------------------------------------------------------------------------

    def _ready(self, *, force: bool = False) -> bool:
        """Whether to try the store now (it is up, or its back-off has passed, or this is
        the last chance: the recorder is stopping)."""
        if not self.healthy and time.monotonic() < self._retry_at and not force:
            return False
        if self.writer is None:
            try:
                self.store = self._open_store()
                self.writer = RecordWriter(self.store)
            except (StoreError, sa_errors.SQLAlchemyError, psycopg.Error, OSError) as exc:
                self._down(str(exc))
                return False
        return True

    def _write(self, rows: list[Row], events: Sequence[wire.Event]) -> Written:
        """Writes, splitting a batch the store refuses for its content; raises Unavailable
        when the store cannot be written to."""
        assert self.writer is not None
        try:
            written = self.writer.write(rows, events)
        except (
            sa_errors.OperationalError,
            sa_errors.InterfaceError,
            sa_errors.TimeoutError,
            psycopg.OperationalError,
            psycopg.InterfaceError,
            OSError,
        ) as exc:
            raise Unavailable(_first_line(exc)) from exc
        except sa_errors.DBAPIError as exc:
            if exc.connection_invalidated:
                raise Unavailable(_first_line(exc)) from exc
            return self._bisect(rows, events, exc)
        except (psycopg.Error, sa_errors.SQLAlchemyError, ValueError, TypeError) as exc:
            return self._bisect(rows, events, exc)
        self.metrics.count("tollway_records_stored_total", written.records)
        if written.duplicates:
            self.metrics.count("tollway_records_duplicate_total", written.duplicates)
        return written

    def _bisect(self, rows: list[Row], events: Sequence[wire.Event], error: Exception) -> Written:
        if len(rows) + len(events) <= 1:
            what = f"record {rows[0].record_id}" if rows else f"event {events[0].event_id}"
            log.error("the store refused %s: %s", what, _first_line(error))
            self.metrics.count("tollway_records_rejected_total", len(rows))
            return Written([], 0, 0)
        if rows:
            half = len(rows) // 2
            a = self._write(rows[:half], ())
            b = self._write(rows[half:], ())
            c = self._write([], events) if events else Written([], 0, 0)
        else:
            half = len(events) // 2
            a = self._write([], events[:half])
            b = self._write([], events[half:])
            c = Written([], 0, 0)
        return Written(
            a.fresh + b.fresh + c.fresh,
            a.duplicates + b.duplicates + c.duplicates,
            a.events + b.events + c.events,
        )

    def _down(self, why: str) -> None:
        if self.healthy or self._retry_at == 0.0:
            log.error("cannot write call records to the store (spooling them): %s", why)
        self.healthy = False
        self.metrics.gauge("tollway_record_store_up", 0)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(_MAX_BACKOFF_S, self._backoff * 2)

    def _up(self) -> None:
        if not self.healthy:
            if self._retry_at:
                log.warning("the store takes call records again; replaying the spool")
            self.healthy = True
            self._backoff = _FIRST_BACKOFF_S
            self.metrics.gauge("tollway_record_store_up", 1)
            self.spool.seal()
            self._replay(until=self._deadline if self._finishing.is_set() else None)

    # -- spool files, retention, names -----------------------------------------------------

    def _replay(self, until: float | None = None) -> None:
        directory = self.spool.directory
        if directory is None:
            return
        for path in spool.ready_files(directory):
            if until is not None and time.monotonic() > until:
                return
            if not self._replay_file(path):
                return

    def _replay_file(self, path: Path) -> bool:
        batches: list[wire.RecordBatch] = []
        events: list[wire.Event] = []
        try:
            for frame in spool.frames(path):
                try:
                    message = wire.decode(frame)
                except wire.BadMessage as exc:
                    log.error("skipping a message of %s: %s", path.name, exc)
                    continue
                if isinstance(message, wire.RecordBatch):
                    batches.append(message)
                elif isinstance(message, list):
                    events.extend(message)
        except FileNotFoundError:
            return True
        from_worker = spool.from_worker(path)
        rows = [row for batch in batches for row in records.rows(batch)]
        try:
            for at in range(0, max(len(rows), 1), self.max_batch):
                chunk = rows[at : at + self.max_batch]
                written = self._write(chunk, events if at == 0 else ())
                if from_worker:
                    # Never seen by the recorder before: new ones count in the metrics now.
                    self.metrics.observe_rows(written.fresh)
        except Unavailable as exc:
            self._down(str(exc))
            return False
        path.unlink(missing_ok=True)
        log.info("replayed %s: %d records, %d events", path.name, len(rows), len(events))
        return True

    def _maintain(self) -> None:
        now = time.monotonic()
        if not self.healthy:
            if now >= self._retry_at and self._ready() and self.writer is not None:
                # A cheap probe: an empty write succeeds only when the store answers.
                try:
                    self._write([], [])
                    self._probe()
                except Unavailable as exc:
                    self._down(str(exc))
                    return
                self._up()
            return
        if self.store is None or self.writer is None:
            return
        try:
            if self.spool.directory is not None and spool.ready_files(self.spool.directory):
                self._replay()
            today = datetime.now(UTC).date()
            if self._prepared != today:
                self.writer.prepare_days([today, today + timedelta(days=1)])
                self._prepared = today
            if now >= self._next_retention:
                self._next_retention = now + _RETENTION_EVERY_S
                retention.apply(self.store, self.writer, self.retention_days, datetime.now(UTC))
            if now >= self._next_names:
                self._next_names = now + _NAMES_EVERY_S
                self._refresh_names()
        except (StoreError, sa_errors.SQLAlchemyError, psycopg.Error, OSError) as exc:
            self._down(_first_line(exc))

    def _probe(self) -> None:
        assert self.store is not None
        try:
            self.store.current_version()
        except (StoreError, sa_errors.SQLAlchemyError, psycopg.Error, OSError) as exc:
            raise Unavailable(_first_line(exc)) from exc

    def _refresh_names(self) -> None:
        assert self.store is not None
        with self.store.read() as session:
            found = session.execute(
                select(Service.id, Team.name, Service.name).join(Team, Team.id == Service.team_id)
            ).all()
        self.names = {service_id: f"{team}/{name}" for service_id, team, name in found}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
