"""The control plane's tables: one SQLAlchemy 2 schema for SQLite and PostgreSQL.

Every row that can be updated carries a `revision`, bumped by each UPDATE (SQLAlchemy's
version counter): it is the ETag of the admin API and guards against lost updates. The
migrations in `store/migrations/` create exactly this schema (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both back ends (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime reached the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite numbers a table's rows only through an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: Json}


class Revisioned:
    """Created and updated times, and the revision that makes the ETag."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.revision}  # type: ignore[attr-defined]


class ConfigState(Base):
    """One row: the config version, bumped in the same transaction as every change."""

    __tablename__ = "config_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class User(Revisioned, Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    platform_role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        CheckConstraint("platform_role IN ('admin', 'member')", name="platform_role"),
    )


class UserToken(Base):
    """A bearer token for the admin API; only its SHA-256 is kept."""

    __tablename__ = "user_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # How it came to be: api (created by its user), login, bootstrap, env (TOLLWAY_ADMIN_TOKEN).
    source: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    __table_args__ = (
        CheckConstraint("source IN ('api', 'login', 'bootstrap', 'env')", name="source"),
    )


class Team(Revisioned, Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class TeamMember(Revisioned, Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    __table_args__ = (
        CheckConstraint("role IN ('team_admin', 'developer', 'viewer')", name="role"),
    )


class App(Revisioned, Base):
    __tablename__ = "apps"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    # The MCP tools it may see and call: {"allow": [...] or null, "deny": [...]}; None: all.
    tools: Mapped[dict[str, Any] | None] = mapped_column(Json)
    __table_args__ = (UniqueConstraint("team_id", "name"),)


class ApiKey(Revisioned, Base):
    """A key of an app: its SHA-256 (hex) and a visible prefix; the key itself is never kept."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_models: Mapped[list[str] | None] = mapped_column(Json)
    allowed_cidrs: Mapped[list[str] | None] = mapped_column(Json)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    rotated_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )


class Provider(Revisioned, Base):
    """An upstream provider. `settings` is its ProviderConfig without credentials; the
    credentials are sealed (encrypted) with the store's secret key."""

    __tablename__ = "providers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(Json)
    sealed_credentials: Mapped[str | None] = mapped_column(Text)


class LlmModel(Revisioned, Base):
    """A public model name and, in `deployments`, where it is served."""

    __tablename__ = "llm_models"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # How its deployments share calls and stand in for one another, and its fallbacks: the
    # YAML model's other fields (`routing`, `fallbacks`...), as set (None: all defaults).
    routing: Mapped[dict[str, Any] | None] = mapped_column(Json)


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("llm_models.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    upstream_model: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(100))
    weight: Mapped[int] = mapped_column(Integer, server_default="1")
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("model_id", "position"),)


class PriceEntry(Revisioned, Base):
    """A model's limits and prices (the YAML's `catalog` section)."""

    __tablename__ = "price_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(200), unique=True)
    entry: Mapped[dict[str, Any]] = mapped_column(Json)


class Service(Revisioned, Base):
    __tablename__ = "services"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(8))
    visibility: Mapped[str] = mapped_column(String(8))
    approval: Mapped[str] = mapped_column(String(8))
    route_prefix: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (
        UniqueConstraint("team_id", "name"),
        CheckConstraint("kind IN ('ai', 'rest', 'prompt', 'mcp')", name="kind"),
        CheckConstraint("visibility IN ('public', 'private')", name="visibility"),
        CheckConstraint("approval IN ('auto', 'manual')", name="approval"),
    )


class ServiceVersion(Revisioned, Base):
    """One version of a service; `spec` is its ServiceSpec. Frozen once published."""

    __tablename__ = "service_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    notes: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column()
    # A canary's share of the service's calls, in percent (None for every other status).
    traffic_weight: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        UniqueConstraint("service_id", "number"),
        CheckConstraint(
            "status IN ('draft', 'published', 'canary', 'deprecated', 'retired')", name="status"
        ),
        # One published version serves, and at most one canary beside it: the database
        # holds the rules too.
        Index(
            "uq_service_versions_one_published",
            "service_id",
            unique=True,
            sqlite_where=text("status = 'published'"),
            postgresql_where=text("status = 'published'"),
        ),
        Index(
            "uq_service_versions_one_canary",
            "service_id",
            unique=True,
            sqlite_where=text("status = 'canary'"),
            postgresql_where=text("status = 'canary'"),
        ),
    )


class Subscription(Revisioned, Base):
    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()
    __table_args__ = (
        UniqueConstraint("app_id", "service_id"),
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'cancelled', 'revoked')",
            name="status",
        ),
    )


class AuditEntry(Base):
    """Who did what to which entity, when, and the change (secrets masked)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    entity_name: Mapped[str] = mapped_column(String(300))
    team_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The other team of an entity between two (a subscription's app's team).
    related_team_id: Mapped[int | None] = mapped_column(Integer, index=True)
    config_version: Mapped[int] = mapped_column(BigInteger)
    changes: Mapped[dict[str, Any]] = mapped_column(Json)


# The metering tables (call records, rollups, events, webhooks) live beside these, in the same
# metadata: imported here so that whoever holds `Base.metadata` holds them too.
from tollway.store import metering_schema as _metering_schema  # noqa: E402, F401
