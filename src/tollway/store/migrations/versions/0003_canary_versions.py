"""Canary releases: a service may serve a second version (status `canary`) beside its published
one, taking `traffic_weight` percent of the calls.

Revision 0003. Written out in full (not importing `store.schema`), so that later changes to
the models cannot change what this migration did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLE = "service_versions"
_STATUSES = "status IN ('draft', 'published', 'canary', 'deprecated', 'retired')"
_BEFORE = "status IN ('draft', 'published', 'deprecated', 'retired')"


def _one(status: str) -> None:
    where = sa.text(f"status = '{status}'")
    op.create_index(
        f"uq_{_TABLE}_one_{status}",
        _TABLE,
        ["service_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def _statuses(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table (keeping AUTOINCREMENT,
    # so that ids are still never reused); its partial index is dropped and made again.
    op.drop_index(f"uq_{_TABLE}_one_published", _TABLE)
    with op.batch_alter_table(
        _TABLE, recreate="auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_constraint(f"ck_{_TABLE}_status", type_="check")
        batch.create_check_constraint("status", condition)
    _one("published")


def upgrade() -> None:
    with op.batch_alter_table(_TABLE, table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("traffic_weight", sa.Integer(), nullable=True))
    _statuses(_STATUSES)
    _one("canary")


def downgrade() -> None:
    op.drop_index(f"uq_{_TABLE}_one_canary", _TABLE)
    op.execute(f"UPDATE {_TABLE} SET status = 'deprecated' WHERE status = 'canary'")
    _statuses(_BEFORE)
    with op.batch_alter_table(_TABLE, table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("traffic_weight")
