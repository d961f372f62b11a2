"""The stored-response store: owners apart, in progress then ended, deleted, expired, and one
file shared by two stores (two workers)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tollway.conversations.sqlite_store import SqliteResponseStore

ITEMS = [{"id": "msg_1", "type": "message", "role": "user", "content": "hi"}]


async def test_a_response_from_start_to_end_seen_by_its_owner_only(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "r.sqlite3")
    other_worker = SqliteResponseStore(tmp_path / "r.sqlite3")
    try:
        await store.begin("app:1", "resp_a", ITEMS, time.time())
        started = await other_worker.get("app:1", "resp_a")
        assert started is not None
        assert (started.status, started.input, started.response) == ("in_progress", ITEMS, None)
        assert await other_worker.get("app:2", "resp_a") is None
        output = [{"id": "msg_2", "type": "message", "role": "assistant"}]
        await store.complete(
            "app:1", "resp_a", {"id": "resp_a", "status": "completed", "output": output}
        )
        ended = await other_worker.get("app:1", "resp_a")
        assert ended is not None and ended.status == "completed" and ended.output == output
        # Another owner can neither change nor delete it.
        await store.complete("app:2", "resp_a", {"status": "failed"})
        assert await other_worker.delete("app:2", "resp_a") is False
        kept = await store.get("app:1", "resp_a")
        assert kept is not None and kept.status == "completed"
        assert await other_worker.delete("app:1", "resp_a") is True
        assert await store.get("app:1", "resp_a") is None
    finally:
        store.close()
        other_worker.close()


async def test_expired_responses_are_not_found_and_are_purged(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "r.sqlite3", retention_s=60)
    try:
        await store.begin("key:k", "resp_old", ITEMS, time.time() - 3600)
        assert await store.get("key:k", "resp_old") is None
        # The next write purges what has expired.
        await store.begin("key:k", "resp_new", ITEMS, time.time())
        db = sqlite3.connect(tmp_path / "r.sqlite3")
        assert db.execute("SELECT id FROM stored_responses").fetchall() == [("resp_new",)]
        db.close()
    finally:
        store.close()


async def test_an_id_is_kept_once_per_owner(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "r.sqlite3")
    try:
        await store.begin("app:1", "resp_a", ITEMS, time.time())
        with pytest.raises(sqlite3.IntegrityError):
            await store.begin("app:1", "resp_a", ITEMS, time.time())
        await store.begin("app:2", "resp_a", ITEMS, time.time())
    finally:
        store.close()


async def test_a_response_kept_upstream_is_only_whose_and_where(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "r.sqlite3")
    try:
        await store.keep_upstream("app:1", "resp_up", "openai", time.time())
        found = await store.get("app:1", "resp_up")
        assert found is not None
        assert (found.kept_by, found.status, found.input) == ("openai", "kept_upstream", [])
        assert await store.get("app:2", "resp_up") is None
        await store.begin("app:1", "resp_here", ITEMS, time.time())
        here = await store.get("app:1", "resp_here")
        assert here is not None and here.kept_by is None
    finally:
        store.close()


async def test_a_file_from_before_kept_by_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE stored_responses (owner TEXT NOT NULL, id TEXT NOT NULL,"
        " created_at REAL NOT NULL, expires_at REAL NOT NULL, status TEXT NOT NULL,"
        " input BLOB NOT NULL, response BLOB, PRIMARY KEY (owner, id)) WITHOUT ROWID;"
    )
    old.execute(
        "INSERT INTO stored_responses VALUES ('app:1', 'resp_old', ?, ?, 'completed', '[]', NULL)",
        (time.time(), time.time() + 60),
    )
    old.commit()
    old.close()
    store = SqliteResponseStore(path)
    try:
        before = await store.get("app:1", "resp_old")
        assert before is not None and before.status == "completed" and before.kept_by is None
        await store.keep_upstream("app:1", "resp_new", "openai", time.time())
        after = await store.get("app:1", "resp_new")
        assert after is not None and after.kept_by == "openai"
    finally:
        store.close()


async def test_workers_opening_one_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    """Six workers' first calls at the same moment on a file none has made yet: each is
    answered (set-up, WAL and schema, is done by one at a time)."""
    stores = [SqliteResponseStore(tmp_path / "new.sqlite3") for _ in range(6)]
    try:
        await asyncio.gather(
            *(s.begin("app:1", f"resp_{i}", ITEMS, time.time()) for i, s in enumerate(stores))
        )
        found = await asyncio.gather(*(stores[0].get("app:1", f"resp_{i}") for i in range(6)))
        assert [r.status if r else None for r in found] == ["in_progress"] * 6
    finally:
        for store in stores:
            store.close()
