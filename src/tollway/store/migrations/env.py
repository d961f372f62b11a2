"""Alembic's entry point: runs the migrations on the connection that `store.migrate` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tollway.store.schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the migrations with `tollway migrate`, not the alembic command")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
