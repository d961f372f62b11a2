"""Metering: call records (partitioned by day on PostgreSQL), their minute, hour and day
rollups, events, webhooks and their deliveries, and each service's recording settings.

Revision 0002. Written out in full (not importing `store.metering_schema`), so that later
changes to the models cannot change what this migration did.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PARTITION_SCHEMA = "tollway_records"
LATENCY_BUCKETS = 40
DIMENSIONS = ("team_id", "app_id", "key_id", "service_id", "model", "provider", "status")
COUNTS = (
    "requests",
    "errors",
    "cache_hits",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "ttft_count",
)


def _int(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _text(name: str, length: int) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length), nullable=False)


def _revisioned() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    if postgres:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {PARTITION_SCHEMA}")
    op.create_table(
        "call_records",
        sa.Column("day", sa.Date(), nullable=False),
        _text("record_id", 40),
        sa.Column("ts", TIME, nullable=False),
        _text("request_id", 200),
        _text("trace_id", 32),
        _int("team_id"),
        _int("app_id"),
        _int("key_id"),
        _text("key_name", 200),
        _int("service_id"),
        _int("service_team_id"),
        _int("service_version"),
        _text("api", 40),
        _text("model", 200),
        _text("model_served", 200),
        _text("provider", 63),
        _text("deployment", 300),
        sa.Column("stream", sa.Boolean(), nullable=False),
        _int("status"),
        _text("error_code", 100),
        _text("outcome", 32),
        _text("refused_by", 63),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("upstream_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        _int("input_tokens"),
        _int("output_tokens"),
        _int("cached_tokens"),
        _int("cache_write_tokens"),
        _int("reasoning_tokens"),
        sa.Column("cost", sa.Numeric(20, 12), nullable=True),
        _int("retries"),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        _text("client_address", 64),
        _text("user_agent", 300),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("record_id", "day", name="pk_call_records"),
        postgresql_partition_by="RANGE (day)",
    )
    op.create_index("ix_call_records_ts", "call_records", ["ts"])
    op.create_index("ix_call_records_request_id", "call_records", ["request_id"])
    op.create_index("ix_call_records_team_id_ts", "call_records", ["team_id", "ts"])
    op.create_index("ix_call_records_service_team_id_ts", "call_records", ["service_team_id", "ts"])

    for grain in ("minute", "hour", "day"):
        name = f"rollups_{grain}"
        op.create_table(
            name,
            sa.Column("bucket", TIME, nullable=False),
            _int("team_id"),
            _int("app_id"),
            _int("key_id"),
            _int("service_id"),
            _int("service_team_id"),
            _text("model", 200),
            _text("provider", 63),
            _int("status"),
            *(sa.Column(count, sa.BigInteger(), nullable=False) for count in COUNTS),
            sa.Column("cost", sa.Numeric(24, 12), nullable=False),
            sa.Column("latency_ms_sum", sa.Float(), nullable=False),
            sa.Column("ttft_ms_sum", sa.Float(), nullable=False),
            *(
                sa.Column(f"lat_{i:02d}", sa.BigInteger(), nullable=False)
                for i in range(LATENCY_BUCKETS)
            ),
            sa.PrimaryKeyConstraint("bucket", *DIMENSIONS, name=f"pk_{name}"),
        )

    op.create_table(
        "service_recording",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("bodies", sa.Boolean(), nullable=False),
        sa.Column("max_body_bytes", sa.Integer(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("redact", JSON, nullable=False),
        *_revisioned(),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name="fk_service_recording_service_id_services",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_id", name="pk_service_recording"),
    )

    op.create_table(
        "events",
        sa.Column("id", BIG_ID, nullable=False),
        _text("event_id", 40),
        sa.Column("at", TIME, nullable=False),
        _text("kind", 100),
        _int("team_id"),
        _int("app_id"),
        _int("key_id"),
        sa.Column("payload", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_team_id", "events", ["team_id"])

    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        _text("name", 100),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kinds", JSON, nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_revisioned(),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name="fk_webhooks_team_id_teams", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhooks_team_id", "webhooks", ["team_id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", TIME, nullable=True),
        sa.Column("delivered_at", TIME, nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name="fk_webhook_deliveries_event_id_events",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name="fk_webhook_deliveries_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint(
            "event_id", "webhook_id", name="uq_webhook_deliveries_event_id_webhook_id"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_next_at", "webhook_deliveries", ["next_at"])
    op.create_index("ix_webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id"])


def downgrade() -> None:
    for table in (
        "webhook_deliveries",
        "webhooks",
        "events",
        "service_recording",
        "rollups_day",
        "rollups_hour",
        "rollups_minute",
        "call_records",
    ):
        op.drop_table(table)
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP SCHEMA IF EXISTS {PARTITION_SCHEMA} CASCADE")
