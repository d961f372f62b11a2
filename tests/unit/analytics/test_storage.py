"""Storing records: once each whatever is replayed, rollups from new records only, events
once, spend per key, app and team from the rollups; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from tollway.analytics import wire
from tollway.analytics.records import rows
from tollway.analytics.spend import spend_since
from tollway.analytics.storage import RecordWriter
from tollway.store import Store
from tollway.store.metering_schema import Event, call_records, rollups

NOW = datetime.now(UTC)


def record(seq: int, at: datetime, **fields: Any) -> wire.WireRecord:
    values: dict[str, Any] = {name: None for name in wire.RECORD_FIELDS}
    values.update(
        seq=seq,
        started=at.timestamp(),
        upstream_started=at.timestamp() + 0.001,
        first_byte=0.0,
        finished=at.timestamp() + 0.25,
        request_id=f"req-{seq}".encode(),
        user_agent=b"test",
        client_address="127.0.0.1",
        team_id=1,
        app_id=2,
        key_id=3,
        key_name="t/a/k",
        service_id=4,
        service_team_id=5,
        service_version=1,
        api="openai_chat",
        model="gpt-4o-mini",
        model_served="gpt-4o-mini",
        provider="openai",
        stream=False,
        status=200,
        outcome="completed",
        usage={"prompt_tokens": 10, "completion_tokens": 4},
        cost="0.000123",
        attempts=1,
        cache_hit=False,
    )
    values.update(fields)
    return tuple(values[name] for name in wire.RECORD_FIELDS)


def batch(records: list[wire.WireRecord], prefix: str = "abc-") -> wire.RecordBatch:
    # Times above are wall-clock seconds already: no monotonic offset.
    return wire.RecordBatch(prefix, 0.0, records, 1)


def count(store: Store) -> int:
    with store.read() as session:
        return int(session.execute(select(func.count()).select_from(call_records)).scalar_one())


def minute_totals(store: Store) -> tuple[int, Decimal]:
    table = rollups["minute"]
    with store.read() as session:
        requests, cost = session.execute(
            select(func.sum(table.c.requests), func.sum(table.c.cost))
        ).one()
    return int(requests or 0), Decimal(f"{float(cost or 0):.12f}")


def test_a_replayed_batch_is_stored_and_counted_once(store: Store) -> None:
    writer = RecordWriter(store)
    first = list(rows(batch([record(n, NOW - timedelta(seconds=n)) for n in range(1, 101)])))
    written = writer.write(first)
    assert (written.records, written.duplicates) == (100, 0)
    again = writer.write(first[:50] + list(rows(batch([record(101, NOW)]))))
    assert (again.records, again.duplicates) == (1, 50)
    assert count(store) == 101
    assert minute_totals(store) == (101, Decimal("0.012423000000"))
    with store.read() as session:
        hours = session.execute(select(func.sum(rollups["hour"].c.requests))).scalar_one()
        days = session.execute(select(func.sum(rollups["day"].c.requests))).scalar_one()
    assert hours == days == 101


def test_the_same_seq_under_another_prefix_is_another_record(store: Store) -> None:
    writer = RecordWriter(store)
    writer.write(list(rows(batch([record(1, NOW)], "aaa-"))))
    writer.write(list(rows(batch([record(1, NOW)], "bbb-"))))
    assert count(store) == 2


def test_records_keep_what_the_call_reported(store: Store) -> None:
    writer = RecordWriter(store)
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 20},
        "cache_creation_input_tokens": 5,
    }
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    writer.write(
        list(
            rows(
                batch(
                    [
                        record(
                            7,
                            NOW,
                            usage=usage,
                            traceparent=traceparent,
                            attempts=3,
                            status=502,
                            outcome="upstream_error",
                            error_code="upstream_connect",
                            request_id=b"r\x00" + b"x" * 300,
                        )
                    ]
                )
            )
        )
    )
    with store.read() as session:
        stored = session.execute(select(call_records)).mappings().one()
    assert stored["record_id"] == "abc-7"
    assert stored["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (stored["input_tokens"], stored["output_tokens"]) == (100, 50)
    assert (stored["cached_tokens"], stored["reasoning_tokens"]) == (30, 20)
    assert stored["cache_write_tokens"] == 5
    assert stored["retries"] == 2 and stored["status"] == 502
    assert stored["error_code"] == "upstream_connect"
    assert Decimal(stored["cost"]) == Decimal("0.000123")
    assert 249 < stored["latency_ms"] < 251
    assert stored["request_id"] == "r" + "x" * 199
    assert stored["deployment"] == "openai/gpt-4o-mini"
    errors = rollups["minute"]
    with store.read() as session:
        assert session.execute(select(func.sum(errors.c.errors))).scalar_one() == 1


def test_events_are_stored_once(store: Store) -> None:
    writer = RecordWriter(store)
    event = wire.Event("e-1", NOW.timestamp(), "budget.alert", {"spent": "8.5"}, 1, 2, 3)
    assert writer.write([], [event]).events == 1
    assert writer.write([], [event]).events == 0
    with store.read() as session:
        [stored] = session.scalars(select(Event)).all()
    assert stored.kind == "budget.alert" and stored.payload == {"spent": "8.5"}


def test_spend_since_sums_cost_per_key_app_and_team(store: Store) -> None:
    writer = RecordWriter(store)
    start = NOW - timedelta(days=3, hours=5, minutes=7)
    records = [
        record(1, start - timedelta(minutes=1), cost="5"),  # before: not counted
        record(2, start + timedelta(seconds=30), cost="0.25"),
        record(3, start + timedelta(days=1), cost="1.5", key_id=9),
        record(4, NOW - timedelta(minutes=2), cost="0.000001", app_id=8, team_id=6),
        record(5, NOW - timedelta(hours=2), cost=None),
    ]
    writer.write(list(rows(batch(records))))
    assert spend_since(store, "key", start) == {3: Decimal("0.250001"), 9: Decimal("1.5")}
    assert spend_since(store, "app", start) == {2: Decimal("1.75"), 8: Decimal("0.000001")}
    assert spend_since(store, "team", start) == {1: Decimal("1.75"), 6: Decimal("0.000001")}
    assert spend_since(store, "team", NOW - timedelta(minutes=1)) == {}
