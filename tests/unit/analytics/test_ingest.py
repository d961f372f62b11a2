"""The recorder's writer thread: a store that is away costs nothing (the spool takes the
batches) and a store that comes back gets everything, once, even at the very end."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from test_storage import record

from tollway.analytics import spool, wire
from tollway.analytics.ingest import Ingest, SharedSpool
from tollway.analytics.metrics import Metrics
from tollway.store import Store
from tollway.store.errors import StoreUnavailable
from tollway.store.metering_schema import call_records


class Flaky:
    """Opens the store only once allowed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.allowed = False
        self.refused = 0

    def __call__(self) -> Store:
        if not self.allowed:
            self.refused += 1
            raise StoreUnavailable("the store is away (test)")
        return self.store


def stored(store: Store) -> int:
    with store.read() as session:
        return int(session.execute(select(func.count()).select_from(call_records)).scalar_one())


def batches(n: int, per: int, prefix: str) -> list[wire.RecordBatch]:
    now = datetime.now(UTC)
    return [
        wire.RecordBatch(prefix, 0.0, [record(b * per + i, now) for i in range(per)], 1)
        for b in range(n)
    ]


def wait_for(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_an_absent_store_spools_and_a_returning_one_gets_everything_once(
    store: Store, tmp_path: Path
) -> None:
    metrics = Metrics()
    opener = Flaky(store)
    ingest = Ingest(opener, metrics, SharedSpool(tmp_path, metrics), flush_interval_s=0.05)
    ingest.start()
    for batch in batches(5, 40, "one-"):
        ingest.put(batch)
    wait_for(lambda: metrics.recorder.get("tollway_records_spooled_total") == 200)
    assert opener.refused and stored(store) == 0
    # A worker's spool file too (the channel was full): replayed with the recorder's own.
    writer = spool.SpoolWriter(tmp_path, "w")
    for batch in batches(2, 25, "two-"):
        writer.append(wire.encode_records(batch))
    writer.seal()
    opener.allowed = True
    wait_for(lambda: stored(store) == 250)
    for batch in batches(1, 10, "three-"):
        ingest.put(batch)
    assert ingest.finish(10)
    assert stored(store) == 260
    assert spool.ready_files(tmp_path) == []
    # The worker file's records were new to the metrics; the recorder's own were counted
    # when they arrived (by the intake, not here).
    assert sum(metrics.requests.values()) == 50


def test_the_spool_is_emptied_at_the_end_even_within_a_back_off(
    store: Store, tmp_path: Path
) -> None:
    metrics = Metrics()
    opener = Flaky(store)
    ingest = Ingest(opener, metrics, SharedSpool(tmp_path, metrics), flush_interval_s=0.05)
    ingest.start()
    for batch in batches(3, 10, "late-"):
        ingest.put(batch)
    wait_for(lambda: metrics.recorder.get("tollway_records_spooled_total") == 30)
    ingest._retry_at = time.monotonic() + 3600  # the next try is far away
    opener.allowed = True
    assert ingest.finish(10)
    assert stored(store) == 30
    assert spool.ready_files(tmp_path) == []


def test_a_store_still_away_at_the_end_keeps_the_spool(store: Store, tmp_path: Path) -> None:
    metrics = Metrics()
    ingest = Ingest(Flaky(store), metrics, SharedSpool(tmp_path, metrics), flush_interval_s=0.05)
    ingest.start()
    for batch in batches(2, 10, "kept-"):
        ingest.put(batch)
    assert ingest.finish(5)
    frames = [wire.decode(f) for path in spool.ready_files(tmp_path) for f in spool.frames(path)]
    assert sum(len(b.records) for b in frames if isinstance(b, wire.RecordBatch)) == 20
