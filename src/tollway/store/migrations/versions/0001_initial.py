"""The first schema: users and their tokens, teams, apps and keys, providers, models,
prices, services and their versions, subscriptions, the audit log and the config version.

Revision 0001. Written out in full (not importing `store.schema`), so that later changes to
the models cannot change what this migration did.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _revisioned() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    ]


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*(columns or ("id",)), name=f"pk_{table}")


def _unique(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=f"uq_{table}_{'_'.join(columns)}")


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def _check(table: str, name: str, condition: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(condition, name=f"ck_{table}_{name}")


def _table(name: str, *items: Any) -> None:
    # AUTOINCREMENT on SQLite: ids of deleted rows are never handed out again.
    autoincrement = any(isinstance(i, sa.Column) and i.name == "id" for i in items)
    op.create_table(name, *items, sqlite_autoincrement=autoincrement)


def _index(table: str, column: str) -> None:
    op.create_index(f"ix_{table}_{column}", table, [column])


def upgrade() -> None:
    _table(
        "config_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _check("config_state", "single_row", "id = 1"),
        _pk("config_state"),
    )
    op.execute("INSERT INTO config_state (id, version) VALUES (1, 0)")

    _table(
        "users",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("platform_role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        *_revisioned(),
        _check("users", "platform_role", "platform_role IN ('admin', 'member')"),
        _pk("users"),
        _unique("users", "name"),
    )
    _table(
        "user_tokens",
        _id(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
        _check("user_tokens", "source", "source IN ('api', 'login', 'bootstrap', 'env')"),
        _fk("user_tokens", "user_id", "users", "CASCADE"),
        _pk("user_tokens"),
        _unique("user_tokens", "digest"),
    )
    _index("user_tokens", "user_id")

    _table(
        "teams",
        _id(),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_revisioned(),
        _pk("teams"),
        _unique("teams", "name"),
    )
    _table(
        "team_members",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        *_revisioned(),
        _check("team_members", "role", "role IN ('team_admin', 'developer', 'viewer')"),
        _fk("team_members", "team_id", "teams", "CASCADE"),
        _fk("team_members", "user_id", "users", "CASCADE"),
        _pk("team_members", "team_id", "user_id"),
    )
    _index("team_members", "user_id")

    _table(
        "apps",
        _id(),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_revisioned(),
        _fk("apps", "team_id", "teams"),
        _pk("apps"),
        _unique("apps", "team_id", "name"),
    )
    _index("apps", "team_id")
    _table(
        "api_keys",
        _id(),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("allowed_models", JSON, nullable=True),
        sa.Column("allowed_cidrs", JSON, nullable=True),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("rotated_from_id", sa.Integer(), nullable=True),
        *_revisioned(),
        _fk("api_keys", "app_id", "apps", "CASCADE"),
        _fk("api_keys", "rotated_from_id", "api_keys", "SET NULL"),
        _pk("api_keys"),
        _unique("api_keys", "digest"),
    )
    _index("api_keys", "app_id")

    _table(
        "providers",
        _id(),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("sealed_credentials", sa.Text(), nullable=True),
        *_revisioned(),
        _pk("providers"),
        _unique("providers", "name"),
    )
    _table(
        "llm_models",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        *_revisioned(),
        _pk("llm_models"),
        _unique("llm_models", "name"),
    )
    _table(
        "deployments",
        _id(),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("upstream_model", sa.String(200), nullable=True),
        _fk("deployments", "model_id", "llm_models", "CASCADE"),
        _fk("deployments", "provider_id", "providers"),
        _pk("deployments"),
        _unique("deployments", "model_id", "position"),
    )
    _index("deployments", "provider_id")
    _table(
        "price_entries",
        _id(),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("entry", JSON, nullable=False),
        *_revisioned(),
        _pk("price_entries"),
        _unique("price_entries", "model"),
    )

    _table(
        "services",
        _id(),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("approval", sa.String(8), nullable=False),
        sa.Column("route_prefix", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_revisioned(),
        _check("services", "kind", "kind IN ('ai', 'rest')"),
        _check("services", "visibility", "visibility IN ('public', 'private')"),
        _check("services", "approval", "approval IN ('auto', 'manual')"),
        _fk("services", "team_id", "teams"),
        _pk("services"),
        _unique("services", "route_prefix"),
        _unique("services", "team_id", "name"),
    )
    _index("services", "team_id")
    _table(
        "service_versions",
        _id(),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("published_at", TIME, nullable=True),
        *_revisioned(),
        _check(
            "service_versions",
            "status",
            "status IN ('draft', 'published', 'deprecated', 'retired')",
        ),
        _fk("service_versions", "service_id", "services", "CASCADE"),
        _pk("service_versions"),
        _unique("service_versions", "service_id", "number"),
    )
    published = sa.text("status = 'published'")
    op.create_index(
        "uq_service_versions_one_published",
        "service_versions",
        ["service_id"],
        unique=True,
        sqlite_where=published,
        postgresql_where=published,
    )

    _table(
        "subscriptions",
        _id(),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("requested_at", TIME, nullable=False),
        sa.Column("decided_at", TIME, nullable=True),
        *_revisioned(),
        _check(
            "subscriptions",
            "status",
            "status IN ('pending', 'approved', 'rejected', 'cancelled', 'revoked')",
        ),
        _fk("subscriptions", "app_id", "apps", "CASCADE"),
        _fk("subscriptions", "service_id", "services", "CASCADE"),
        _fk("subscriptions", "requested_by", "users", "SET NULL"),
        _fk("subscriptions", "decided_by", "users", "SET NULL"),
        _pk("subscriptions"),
        _unique("subscriptions", "app_id", "service_id"),
    )
    _index("subscriptions", "service_id")

    _table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("entity_name", sa.String(300), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("related_team_id", sa.Integer(), nullable=True),
        sa.Column("config_version", sa.BigInteger(), nullable=False),
        sa.Column("changes", JSON, nullable=False),
        _pk("audit_log"),
    )
    _index("audit_log", "at")
    _index("audit_log", "team_id")
    _index("audit_log", "related_team_id")


def downgrade() -> None:
    for table in (
        "audit_log",
        "subscriptions",
        "service_versions",
        "services",
        "price_entries",
        "deployments",
        "llm_models",
        "providers",
        "api_keys",
        "apps",
        "team_members",
        "teams",
        "user_tokens",
        "users",
        "config_state",
    ):
        op.drop_table(table)
