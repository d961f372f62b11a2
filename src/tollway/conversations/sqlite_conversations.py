"""Conversations in the node's SQLite state file (beside the stored responses): each write is
one `BEGIN IMMEDIATE` transaction, so that the workers of a node, which all write here, see
every version in order."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from tollway.conversations.sqlite_store import SqliteFile
from tollway.conversations.stored import (
    Conversation,
    ConversationConflict,
    ConversationNotFound,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at REAL NOT NULL,
    metadata BLOB NOT NULL,
    version INTEGER NOT NULL,
    turn TEXT,
    turn_since REAL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS context_summaries (
    owner TEXT NOT NULL,
    covers TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, covers)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversation_items (
    owner TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    item BLOB NOT NULL,
    PRIMARY KEY (owner, conversation_id, position)
) WITHOUT ROWID;
"""
# A response that began in a conversation and never ended (its node died) stops holding the
# conversation after this long.
TURN_HELD_S = 600.0


class SqliteConversationStore(SqliteFile):
    schema = _SCHEMA

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- reads ------------------------------------------------------------------------------

    def _get(self, db: sqlite3.Connection, owner: str, conversation_id: str) -> Conversation:
        row = db.execute(
            "SELECT created_at, metadata, version, turn, turn_since FROM conversations"
            " WHERE owner = ? AND id = ?",
            (owner, conversation_id),
        ).fetchone()
        if row is None:
            raise ConversationNotFound(conversation_id)
        created_at, metadata, version, turn, since = row
        if turn is not None and time.time() - since > TURN_HELD_S:
            turn = None
        return Conversation(conversation_id, created_at, orjson.loads(metadata), version, turn)

    def _items(self, db: sqlite3.Connection, owner: str, conversation_id: str) -> list[Any]:
        rows = db.execute(
            "SELECT item FROM conversation_items WHERE owner = ? AND conversation_id = ?"
            " ORDER BY position",
            (owner, conversation_id),
        )
        return [orjson.loads(item) for (item,) in rows]

    async def conversation(self, owner: str, conversation_id: str) -> Conversation | None:
        try:
            found: Conversation = await self._run(
                lambda: self._get(self._connection(), owner, conversation_id)
            )
        except ConversationNotFound:
            return None
        return found

    async def conversation_items(
        self, owner: str, conversation_id: str
    ) -> tuple[Conversation, list[dict[str, Any]]]:
        def read() -> tuple[Conversation, list[dict[str, Any]]]:
            db = self._connection()
            db.execute("BEGIN")  # one snapshot for both reads
            try:
                return self._get(db, owner, conversation_id), self._items(
                    db, owner, conversation_id
                )
            finally:
                db.execute("COMMIT")

        found: tuple[Conversation, list[dict[str, Any]]] = await self._run(read)
        return found

    # -- writes -----------------------------------------------------------------------------

    def _check(self, current: Conversation, expect: int | None, turn: str | None = None) -> None:
        if current.turn is not None and current.turn != turn:
            raise ConversationConflict(
                f"A response ({current.turn}) is being made in conversation '{current.id}'; "
                "write again when it has ended.",
                current,
            )
        if expect is not None and expect != current.version:
            raise ConversationConflict(
                f"Conversation '{current.id}' is at version {current.version}, not {expect}: "
                "another write came first. Read it again, then write.",
                current,
            )

    def _add(
        self, db: sqlite3.Connection, owner: str, conversation_id: str, items: list[Any]
    ) -> None:
        (last,) = db.execute(
            "SELECT COALESCE(MAX(position), -1) FROM conversation_items"
            " WHERE owner = ? AND conversation_id = ?",
            (owner, conversation_id),
        ).fetchone()
        db.executemany(
            "INSERT INTO conversation_items (owner, conversation_id, position, item_id, item)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (owner, conversation_id, last + 1 + i, item["id"], orjson.dumps(item))
                for i, item in enumerate(items)
            ],
        )

    def _bump(
        self,
        db: sqlite3.Connection,
        owner: str,
        current: Conversation,
        turn: str | None,
        metadata: dict[str, str] | None = None,
    ) -> Conversation:
        metadata = current.metadata if metadata is None else metadata
        db.execute(
            "UPDATE conversations SET version = ?, turn = ?, turn_since = ?, metadata = ?"
            " WHERE owner = ? AND id = ?",
            (
                current.version + 1,
                turn,
                time.time() if turn is not None else None,
                orjson.dumps(metadata),
                owner,
                current.id,
            ),
        )
        return Conversation(current.id, current.created_at, metadata, current.version + 1, turn)

    async def create_conversation(
        self,
        owner: str,
        conversation_id: str,
        metadata: dict[str, str],
        items: list[dict[str, Any]],
        created_at: float,
    ) -> Conversation:
        def create() -> Conversation:
            with self._write() as db:
                db.execute(
                    "INSERT INTO conversations (owner, id, created_at, metadata, version)"
                    " VALUES (?, ?, ?, ?, 1)",
                    (owner, conversation_id, created_at, orjson.dumps(metadata)),
                )
                self._add(db, owner, conversation_id, items)
            return Conversation(conversation_id, created_at, metadata, 1)

        created: Conversation = await self._run(create)
        return created

    async def update_conversation(
        self, owner: str, conversation_id: str, metadata: dict[str, str], expect: int | None
    ) -> Conversation:
        def update() -> Conversation:
            with self._write() as db:
                current = self._get(db, owner, conversation_id)
                self._check(current, expect)
                return self._bump(db, owner, current, None, metadata)

        updated: Conversation = await self._run(update)
        return updated

    async def delete_conversation(self, owner: str, conversation_id: str) -> bool:
        def delete() -> bool:
            with self._write() as db:
                gone = db.execute(
                    "DELETE FROM conversations WHERE owner = ? AND id = ?",
                    (owner, conversation_id),
                ).rowcount
                db.execute(
                    "DELETE FROM conversation_items WHERE owner = ? AND conversation_id = ?",
                    (owner, conversation_id),
                )
            return gone > 0

        deleted: bool = await self._run(delete)
        return deleted

    async def append(
        self,
        owner: str,
        conversation_id: str,
        items: list[dict[str, Any]],
        expect: int | None,
        turn: str | None = None,
    ) -> Conversation:
        def append() -> Conversation:
            with self._write() as db:
                current = self._get(db, owner, conversation_id)
                self._check(current, expect)
                self._add(db, owner, conversation_id, items)
                return self._bump(db, owner, current, turn)

        done: Conversation = await self._run(append)
        return done

    async def end_turn(
        self, owner: str, conversation_id: str, turn: str, items: list[dict[str, Any]]
    ) -> None:
        def end() -> None:
            with self._write() as db:
                try:
                    current = self._get(db, owner, conversation_id)
                except ConversationNotFound:
                    return  # deleted meanwhile
                if current.turn != turn:
                    return  # it was let go (held too long)
                self._add(db, owner, conversation_id, items)
                self._bump(db, owner, current, None)

        await self._run(end)

    async def delete_item(
        self, owner: str, conversation_id: str, item_id: str, expect: int | None
    ) -> Conversation:
        def delete() -> Conversation:
            with self._write() as db:
                current = self._get(db, owner, conversation_id)
                self._check(current, expect)
                gone = db.execute(
                    "DELETE FROM conversation_items"
                    " WHERE owner = ? AND conversation_id = ? AND item_id = ?",
                    (owner, conversation_id, item_id),
                ).rowcount
                if not gone:
                    raise ConversationNotFound(item_id)
                return self._bump(db, owner, current, None)

        deleted: Conversation = await self._run(delete)
        return deleted

    async def summaries(self, owner: str, covers: list[str]) -> dict[str, str]:
        def read() -> dict[str, str]:
            marks = ", ".join("?" * len(covers))
            rows = self._connection().execute(
                "SELECT covers, summary FROM context_summaries"
                f" WHERE owner = ? AND covers IN ({marks})",
                (owner, *covers),
            )
            return dict(rows.fetchall())

        found: dict[str, str] = await self._run(read) if covers else {}
        return found

    async def keep_summary(self, owner: str, covers: str, summary: str) -> None:
        def write() -> None:
            self._connection().execute(
                "INSERT OR REPLACE INTO context_summaries (owner, covers, summary, created_at)"
                " VALUES (?, ?, ?, ?)",
                (owner, covers, summary, time.time()),
            )

        await self._run(write)

    async def fork(
        self, owner: str, conversation_id: str, item_id: str, new_id: str, created_at: float
    ) -> Conversation:
        def fork() -> Conversation:
            with self._write() as db:
                current = self._get(db, owner, conversation_id)
                items = self._items(db, owner, conversation_id)
                ids = [item.get("id") for item in items]
                if item_id not in ids:
                    raise ConversationNotFound(item_id)
                kept = items[: ids.index(item_id) + 1]
                db.execute(
                    "INSERT INTO conversations (owner, id, created_at, metadata, version)"
                    " VALUES (?, ?, ?, ?, 1)",
                    (owner, new_id, created_at, orjson.dumps(current.metadata)),
                )
                self._add(db, owner, new_id, kept)
            return Conversation(new_id, created_at, current.metadata, 1)

        forked: Conversation = await self._run(fork)
        return forked
