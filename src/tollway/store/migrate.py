"""Applying the shipped Alembic migrations: on every open, and by `tollway migrate`.

Several processes may open the same store at once (workers, nodes): on PostgreSQL an advisory
lock, on SQLite the write lock of BEGIN IMMEDIATE, lets one of them migrate while the others
wait and then find nothing left to do.
"""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from tollway.store.engine import WRITE
from tollway.store.errors import SchemaMismatch

# Alembic narrates each step at INFO; the store logs what matters (a migration done).
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

# pg_advisory_xact_lock key: "tollway" in ASCII, as a number.
_LOCK = 0x746F6C6C776179


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "tollway.store:migrations")
    return config


def head() -> str:
    """The newest revision this Tollway ships."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: no Tollway schema yet)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (revision before, revision after)."""
    config = _config()
    scripts = ScriptDirectory.from_config(config)
    with engine.execution_options(**{WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        before = current(connection)
        if before is not None and before not in {s.revision for s in scripts.walk_revisions()}:
            raise SchemaMismatch(
                f"the database's schema revision {before} is unknown to this Tollway "
                "(made by a newer version?): upgrade Tollway, or use another store"
            )
        if before != head():
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, head()
