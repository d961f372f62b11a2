"""Call records as the recorder writes them, made up for tests of what reads them back
(analytics, budgets' spend)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from tollway.analytics import wire
from tollway.analytics.records import rows
from tollway.analytics.storage import RecordWriter
from tollway.store import Store


def record(seq: int, at: datetime, cost: str = "0.001", **fields: Any) -> wire.WireRecord:
    values: dict[str, Any] = {name: None for name in wire.RECORD_FIELDS}
    values.update(
        seq=seq,
        started=at.timestamp(),
        upstream_started=at.timestamp() + 0.001,
        first_byte=0.0,
        finished=at.timestamp() + 0.1,
        request_id=f"req-{seq}".encode(),
        user_agent=b"test",
        client_address="127.0.0.1",
        team_id=0,
        app_id=0,
        key_id=0,
        key_name="",
        service_id=0,
        service_team_id=0,
        service_version=1,
        api="openai_chat",
        model="gpt-4o-mini",
        model_served="gpt-4o-mini",
        provider="openai",
        stream=False,
        status=200,
        outcome="completed",
        usage={"prompt_tokens": 10, "completion_tokens": 4},
        cost=cost,
        attempts=1,
        cache_hit=False,
    )
    values.update(fields)
    return tuple(values[name] for name in wire.RECORD_FIELDS)


def store_records(store: Store, records: list[wire.WireRecord]) -> None:
    RecordWriter(store).write(list(rows(wire.RecordBatch("t-", 0.0, records, 1))))


def stored_records(data_dir: Path) -> dict[str, Any]:
    """The call records a stopped gateway's store holds, by request id."""
    from sqlalchemy import select

    from tollway.store import open_store
    from tollway.store.metering_schema import call_records

    store = open_store(data_dir=data_dir, apply_migrations=False)
    try:
        with store.read() as session:
            return {r.request_id: r for r in session.execute(select(call_records))}
    finally:
        store.close()
