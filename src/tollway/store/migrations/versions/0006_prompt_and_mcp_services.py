"""Prompt APIs and MCP servers: a service may be of kind `prompt` (a prompt template and the
model that answers it, docs/prompt-apis.md) or `mcp` (an upstream MCP server, docs/mcp.md);
their versions hold the template or the server in their spec, as other kinds' do.

Revision 0006. Written out in full (not importing `store.schema`), so that later changes to
the models cannot change what this migration did.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLE = "services"


def _kinds(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table (keeping AUTOINCREMENT,
    # so that ids are still never reused).
    with op.batch_alter_table(
        _TABLE, recreate="auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_constraint(f"ck_{_TABLE}_kind", type_="check")
        batch.create_check_constraint("kind", condition)


def upgrade() -> None:
    _kinds("kind IN ('ai', 'rest', 'prompt', 'mcp')")


def downgrade() -> None:
    added = f"SELECT id FROM {_TABLE} WHERE kind IN ('prompt', 'mcp')"
    for table in ("service_versions", "subscriptions", "service_recording"):
        op.execute(f"DELETE FROM {table} WHERE service_id IN ({added})")
    op.execute(f"DELETE FROM {_TABLE} WHERE kind IN ('prompt', 'mcp')")
    _kinds("kind IN ('ai', 'rest')")
