"""Stored responses in a SQLite file that every worker of a node opens (WAL: readers never
wait for the writer), each worker through one connection used by one thread of its own, so
that the event loop never waits for the disk. Conversations are in the same file
(conversations/sqlite_conversations.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from tollway.conversations.stored import StoredResponse
from tollway.file_lock import exclusive

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stored_responses (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL,
    input BLOB NOT NULL,
    response BLOB,
    kept_by TEXT,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stored_responses_expiry ON stored_responses (expires_at);
"""
# As long as OpenAI keeps a stored response.
DEFAULT_RETENTION_S = 30 * 24 * 3600.0
# Expired rows are removed at most this often (by whichever worker writes next).
_PURGE_EVERY_S = 3600.0


class SqliteFile:
    """A SQLite file of the node's, used by this process through one connection in a thread
    of its own."""

    schema = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tollway-state")
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            # Workers opening one new file at once would race on its set-up (WAL, schema).
            with exclusive(self.path.with_name(self.path.name + "-open")):
                db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(self.schema)
                self.upgrade(db)
            self._db = db
        return self._db

    def upgrade(self, db: sqlite3.Connection) -> None:
        """Bring a file an older version made up to this schema."""

    async def _run(self, work: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._thread.submit(shut)
        self._thread.shutdown(wait=True)


class SqliteResponseStore(SqliteFile):
    schema = _SCHEMA

    def __init__(self, path: Path, retention_s: float = DEFAULT_RETENTION_S) -> None:
        super().__init__(path)
        self.retention_s = retention_s
        self._purged_at = 0.0

    def upgrade(self, db: sqlite3.Connection) -> None:
        columns = {row[1] for row in db.execute("PRAGMA table_info(stored_responses)")}
        if "kept_by" not in columns:  # a file from before responses kept upstream
            db.execute("ALTER TABLE stored_responses ADD COLUMN kept_by TEXT")

    async def begin(
        self, owner: str, response_id: str, items: list[dict[str, Any]], created_at: float
    ) -> None:
        await self._run(self._begin, owner, response_id, orjson.dumps(items), created_at, None)

    async def keep_upstream(
        self, owner: str, response_id: str, provider: str, created_at: float
    ) -> None:
        await self._run(self._begin, owner, response_id, b"[]", created_at, provider)

    def _begin(
        self,
        owner: str,
        response_id: str,
        items: bytes,
        created_at: float,
        kept_by: str | None,
    ) -> None:
        db = self._connection()
        db.execute(
            "INSERT INTO stored_responses"
            " (owner, id, created_at, expires_at, status, input, kept_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                owner,
                response_id,
                created_at,
                created_at + self.retention_s,
                "kept_upstream" if kept_by is not None else "in_progress",
                items,
                kept_by,
            ),
        )
        if created_at - self._purged_at >= _PURGE_EVERY_S:
            self._purged_at = created_at
            db.execute("DELETE FROM stored_responses WHERE expires_at < ?", (created_at,))

    async def complete(self, owner: str, response_id: str, response: dict[str, Any]) -> None:
        status = str(response.get("status") or "completed")
        await self._run(self._complete, owner, response_id, status, orjson.dumps(response))

    def _complete(self, owner: str, response_id: str, status: str, response: bytes) -> None:
        self._connection().execute(
            "UPDATE stored_responses SET status = ?, response = ? WHERE owner = ? AND id = ?",
            (status, response, owner, response_id),
        )

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        found: StoredResponse | None = await self._run(self._get, owner, response_id)
        return found

    def _get(self, owner: str, response_id: str) -> StoredResponse | None:
        row = (
            self._connection()
            .execute(
                "SELECT created_at, status, input, response, kept_by FROM stored_responses"
                " WHERE owner = ? AND id = ? AND expires_at >= ?",
                (owner, response_id, time.time()),
            )
            .fetchone()
        )
        if row is None:
            return None
        created_at, status, items, response, kept_by = row
        return StoredResponse(
            response_id,
            created_at,
            orjson.loads(items),
            orjson.loads(response) if response is not None else None,
            status,
            kept_by,
        )

    async def delete(self, owner: str, response_id: str) -> bool:
        deleted: bool = await self._run(self._delete, owner, response_id)
        return deleted

    def _delete(self, owner: str, response_id: str) -> bool:
        cursor = self._connection().execute(
            "DELETE FROM stored_responses WHERE owner = ? AND id = ?", (owner, response_id)
        )
        return cursor.rowcount > 0
