"""Call records as the recorder writes them, made up for tests of what reads them back
(analytics, budgets' spend)."""

from __future__ import annotations

from datetime import datetime
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
