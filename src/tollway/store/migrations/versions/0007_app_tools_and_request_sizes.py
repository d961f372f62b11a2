"""An app's own allow and deny lists of the MCP tools it may see and call, and each call
record's request size (an MCP tool call's: its arguments) (docs/mcp.md).

Revision 0007. Written out in full (not importing `store.schema`), so that later changes to
the models cannot change what this migration did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "apps", sa.Column("tools", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
    )
    op.add_column(
        "call_records",
        sa.Column("request_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("request_bytes")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("tools")
