"""Database URLs and engines: the few places where SQLite and PostgreSQL differ.

SQLite runs in WAL mode with foreign keys on; a write transaction starts with BEGIN IMMEDIATE
so that writers queue at their start instead of failing at their first write. PostgreSQL is
reached through psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from tollway.file_lock import exclusive
from tollway.store.errors import StoreUnavailable

DATABASE_FILE = "tollway.db"
# Execution option that marks a connection's transaction as a write.
WRITE = "tollway_write"


def url_for(*, data_dir: str | Path | None = None, store: str | None = None) -> URL:
    """The database URL for a data directory (SQLite) or a store URL (PostgreSQL, SQLite)."""
    if (data_dir is None) == (store is None):
        raise ValueError("give exactly one of data_dir and store")
    if data_dir is not None:
        return URL.create("sqlite", database=str(Path(data_dir) / DATABASE_FILE))
    assert store is not None
    try:
        url = make_url(store)
    except ArgumentError:
        raise StoreUnavailable(
            f"{store!r} is not a database URL (postgresql://USER@HOST/DB or sqlite:///FILE)"
        ) from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url.set(drivername="sqlite")
    raise StoreUnavailable(
        f"unsupported store {url.drivername!r}: use postgresql://... or sqlite:///FILE"
    )


def describe(url: URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return url.render_as_string(hide_password=True)


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


@contextmanager
def opening(url: URL) -> Iterator[None]:
    """Held while a store is opened and migrated: one opener at a time per SQLite file.

    Several workers (or threads) opening one new SQLite file at once race on its set-up:
    switching a fresh file to WAL and creating the schema can fail with "database is locked"
    despite the busy timeout, because SQLite declines to wait where waiting could deadlock.
    An advisory lock on a file beside the database (`tollway.db-open`) puts the openers in a
    queue. PostgreSQL needs nothing here (migrations take an advisory lock of their own).
    """
    if url.get_backend_name() != "sqlite" or is_memory(url):
        yield
        return
    assert url.database is not None
    path = Path(url.database)
    with exclusive(path.with_name(path.name + "-open")):
        yield


def create(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": 10, "application_name": "tollway"},
    )


def _sqlite(url: URL) -> Engine:
    memory = is_memory(url)
    if not memory:
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        # One shared connection for an in-memory database (the Store serialises its use).
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Leave transactions to the "begin" hook below (pysqlite's own handling is off).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
