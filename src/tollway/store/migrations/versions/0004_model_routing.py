"""Model routing in the store: a deployment's name, weight and own rpm/tpm, and a model's
routing settings and fallbacks, as the YAML's `models` section has them.

Revision 0004. Written out in full (not importing `store.schema`), so that later changes to
the models cannot change what this migration did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Kept should SQLite's batch mode copy a table: ids are still never reused.
_KEEP = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("deployments", table_kwargs=_KEEP) as batch:
        batch.add_column(sa.Column("name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("weight", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
    with op.batch_alter_table("llm_models", table_kwargs=_KEEP) as batch:
        batch.add_column(sa.Column("routing", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("llm_models", table_kwargs=_KEEP) as batch:
        batch.drop_column("routing")
    with op.batch_alter_table("deployments", table_kwargs=_KEEP) as batch:
        batch.drop_column("tpm")
        batch.drop_column("rpm")
        batch.drop_column("weight")
        batch.drop_column("name")
