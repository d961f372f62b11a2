"""The metering tables: call records, their rollups, events, webhooks, and each service's
recording settings. Beside the control plane's tables (store/schema.py) in the same store and
the same metadata; migration 0002 creates them.

Call records and rollups are written in bulk by the recorder (analytics/storage.py) through
SQLAlchemy Core, so they are Core tables; the rest are ORM entities like the control plane's.

On PostgreSQL `call_records` is partitioned by day (`day`): the recorder creates each day's
partition, in the `tollway_records` schema, and retention drops whole partitions. A record's
key is (record_id, day): the day is part of every key of a partitioned table, and a record's
day never changes, so a record id is stored once whatever happens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tollway.store.schema import Base, BigId, Json, Revisioned, UTCDateTime, utcnow

# PostgreSQL schema holding call_records' daily partitions (out of the control plane's way).
PARTITION_SCHEMA = "tollway_records"
# Latency histogram buckets of the rollups: bucket i counts calls of at most 2^(i/2) ms
# (bucket 0: up to 1 ms; the last also takes everything slower, about 12 minutes and more).
LATENCY_BUCKETS = 40
COST = Numeric(20, 12)
TOTAL_COST = Numeric(24, 12)

call_records = Table(
    "call_records",
    Base.metadata,
    Column("day", Date, nullable=False),
    Column("record_id", String(40), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("request_id", String(200), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("team_id", Integer, nullable=False),
    Column("app_id", Integer, nullable=False),
    Column("key_id", Integer, nullable=False),
    Column("key_name", String(200), nullable=False),
    Column("service_id", Integer, nullable=False),
    Column("service_team_id", Integer, nullable=False),
    Column("service_version", Integer, nullable=False),
    Column("api", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("model_served", String(200), nullable=False),
    Column("provider", String(63), nullable=False),
    Column("deployment", String(300), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_code", String(100), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("refused_by", String(63), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("upstream_ms", Float, nullable=True),
    Column("ttft_ms", Float, nullable=True),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("context_saved_tokens", Integer, nullable=False, server_default="0"),
    Column("request_bytes", BigInteger, nullable=False, server_default="0"),
    Column("cost", COST, nullable=True),
    Column("retries", Integer, nullable=False),
    Column("cache_hit", Boolean, nullable=False),
    Column("client_address", String(64), nullable=False),
    Column("user_agent", String(300), nullable=False),
    Column("request_body", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    PrimaryKeyConstraint("record_id", "day", name="pk_call_records"),
    Index("ix_call_records_ts", "ts"),
    Index("ix_call_records_request_id", "request_id"),
    Index("ix_call_records_team_id_ts", "team_id", "ts"),
    Index("ix_call_records_service_team_id_ts", "service_team_id", "ts"),
    postgresql_partition_by="RANGE (day)",
)

# What a rollup row is keyed by (besides its bucket), and what it sums.
ROLLUP_DIMENSIONS = ("team_id", "app_id", "key_id", "service_id", "model", "provider", "status")
ROLLUP_COUNTS = (
    "requests",
    "errors",
    "cache_hits",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "context_saved_tokens",
    "ttft_count",
)
HISTOGRAM = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))
GRAINS = ("minute", "hour", "day")


def _rollup(grain: str) -> Table:
    name = f"rollups_{grain}"
    return Table(
        name,
        Base.metadata,
        Column("bucket", UTCDateTime, nullable=False),
        Column("team_id", Integer, nullable=False),
        Column("app_id", Integer, nullable=False),
        Column("key_id", Integer, nullable=False),
        Column("service_id", Integer, nullable=False),
        Column("service_team_id", Integer, nullable=False),
        Column("model", String(200), nullable=False),
        Column("provider", String(63), nullable=False),
        Column("status", Integer, nullable=False),
        *(Column(count, BigInteger, nullable=False) for count in ROLLUP_COUNTS),
        Column("cost", TOTAL_COST, nullable=False),
        Column("latency_ms_sum", Float, nullable=False),
        Column("ttft_ms_sum", Float, nullable=False),
        *(Column(bucket, BigInteger, nullable=False) for bucket in HISTOGRAM),
        PrimaryKeyConstraint("bucket", *ROLLUP_DIMENSIONS, name=f"pk_{name}"),
    )


rollups = {grain: _rollup(grain) for grain in GRAINS}


class ServiceRecording(Revisioned, Base):
    """How a service's calls are recorded: bodies (off by default, redacted), retention."""

    __tablename__ = "service_recording"
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    bodies: Mapped[bool] = mapped_column(Boolean, default=False)
    max_body_bytes: Mapped[int] = mapped_column(Integer, default=65536)
    # Days its records are kept (None: the gateway's default).
    retention_days: Mapped[int | None] = mapped_column(Integer)
    # Regular expressions whose matches are redacted from recorded bodies.
    redact: Mapped[list[str]] = mapped_column(Json, default=list)


class Event(Base):
    """Something a policy reported (a budget alert, say), stored once by its id."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(100))
    team_id: Mapped[int] = mapped_column(Integer, index=True)
    app_id: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)


class Webhook(Revisioned, Base):
    """Where events of some kinds are POSTed: a team's (its events) or the platform's (all)."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    # Event kinds (globs such as "budget.*") it takes.
    kinds: Mapped[list[str]] = mapped_column(Json)
    # The signing secret, sealed with the store's secret key (None: unsigned).
    sealed_secret: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class WebhookDelivery(Base):
    """One event to one webhook: tried until delivered or out of attempts."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(index=True)
    delivered_at: Mapped[datetime | None] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("event_id", "webhook_id"),)
