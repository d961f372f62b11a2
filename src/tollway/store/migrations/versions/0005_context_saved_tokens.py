"""The input tokens that fitting a kept conversation to its model saved, in call records and
rollups (docs/context.md).

Revision 0005. Written out in full (not importing `store.schema`), so that later changes to
the models cannot change what this migration did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ROLLUPS = ("rollups_minute", "rollups_hour", "rollups_day")
_TABLES = ("call_records", *_ROLLUPS)


def upgrade() -> None:
    op.add_column(
        "call_records",
        sa.Column("context_saved_tokens", sa.Integer(), nullable=False, server_default="0"),
    )
    for table in _ROLLUPS:
        op.add_column(
            table,
            sa.Column("context_saved_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("context_saved_tokens")
