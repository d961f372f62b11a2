"""Opening, migrating and transacting: the store's machinery, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from tollway.store import SYSTEM, Store, open_store, teams
from tollway.store.errors import Conflict, SchemaMismatch, StoreUnavailable
from tollway.store.migrate import head
from tollway.store.schema import Base

from control_plane import SECRET, new_database, postgres_database, postgres_server


def test_migrations_build_exactly_the_models_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == head()


def test_each_write_bumps_the_version_once(store: Store) -> None:
    assert store.current_version() == 0
    with store.write(SYSTEM) as tx:
        teams.create(tx, "a")
        teams.create(tx, "b")
        assert tx.version == 1
    assert store.current_version() == 1
    with store.write(SYSTEM) as tx:
        teams.create(tx, "c")
    assert store.current_version() == 2


def test_a_failed_or_discarded_write_changes_nothing(store: Store) -> None:
    with pytest.raises(Conflict), store.write(SYSTEM) as tx:
        teams.create(tx, "a")
        teams.create(tx, "a")
    with store.write(SYSTEM) as tx:
        teams.create(tx, "b")
        tx.discard()
    assert store.current_version() == 0
    with store.read() as session:
        assert teams.find(session, "a") is None and teams.find(session, "b") is None


def test_concurrent_writers_get_distinct_increasing_versions(store: Store) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(10):
            with store.write(SYSTEM) as tx:
                teams.create(tx, f"t{n}-{i}")
                with lock:
                    seen.append(tx.version)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 41))
    assert store.current_version() == 40


def test_a_lost_race_on_a_unique_name_is_a_conflict(store: Store) -> None:
    """Two transactions that both checked a name and insert it: the database's unique
    constraint is the last word, and it reads as a conflict."""
    from tollway.store.schema import Team

    with pytest.raises(Conflict), store.write(SYSTEM) as tx:
        tx.session.add(Team(name="dup", description=""))
        tx.session.add(Team(name="dup", description=""))
        tx.session.flush()


def test_data_dir_is_created_with_wal_and_a_private_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "data"
    store = open_store(data_dir=directory)
    try:
        assert (directory / "tollway.db").exists()
        mode = stat.S_IMODE(os.stat(directory / "secret.key").st_mode)
        assert mode == 0o600
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()
    # Opening again keeps the key (credentials sealed before stay readable).
    first = (directory / "secret.key").read_text()
    open_store(data_dir=directory).close()
    assert (directory / "secret.key").read_text() == first


def test_in_memory_store_for_declarative_start() -> None:
    store = open_store(store="sqlite://", secret_key=SECRET)
    with store.write(SYSTEM) as tx:
        teams.create(tx, "a")
    assert store.load_state().teams[1].name == "a"
    store.close()


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store(store="postgresql://nobody:secret@127.0.0.1:1/none", secret_key=SECRET)
    message = str(info.value)
    assert "cannot open the store postgresql+psycopg://nobody:***@127.0.0.1:1/none" in message
    assert "secret" not in message.replace("***", "")


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url"])
def test_unsupported_store_urls_are_named(url: str) -> None:
    with pytest.raises(StoreUnavailable):
        open_store(store=url)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = open_store(data_dir=tmp_path)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(SchemaMismatch, match="unknown to this Tollway"):
        open_store(data_dir=tmp_path)


def test_opening_without_migrating_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatch, match="tollway migrate"):
        open_store(data_dir=tmp_path, apply_migrations=False)
    open_store(data_dir=tmp_path).close()
    open_store(data_dir=tmp_path, apply_migrations=False).close()


def test_postgres_announces_each_version(backend: str, store: Store) -> None:
    """On PostgreSQL a NOTIFY on tollway_config carries each committed version."""
    if backend != "postgresql":
        assert store.backend == "sqlite"
        return
    with psycopg.connect(postgres_database(), autocommit=True) as listener:
        listener.execute("LISTEN tollway_config")
        with store.write(SYSTEM) as tx:
            teams.create(tx, "a")
        with store.write(SYSTEM) as tx:
            teams.create(tx, "b")
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert payloads == ["1", "2"]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_opens_migrate_once(backend: str, tmp_path: Path, round_: int) -> None:
    """Several processes (here threads) opening one new store at once all succeed, and find
    it migrated (a fresh SQLite file once failed here with "database is locked")."""
    errors: list[BaseException] = []
    stores: list[Store] = []
    start = threading.Barrier(6)
    fresh = None if backend == "sqlite" else new_database(postgres_server())

    def one() -> None:
        try:
            start.wait()
            if backend == "sqlite":
                stores.append(open_store(data_dir=tmp_path, secret_key=SECRET))
            else:
                stores.append(open_store(store=fresh, secret_key=SECRET))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len(stores) == 6
        with stores[0].write(SYSTEM) as tx:
            teams.create(tx, "after-the-race")
        assert all(s.current_version() == stores[0].current_version() for s in stores)
    finally:
        for store in stores:
            store.close()
