"""The conversation store: versions counted by writes, stale writes refused, a response's turn
holding the conversation until it ends (or until it is let go), forks, owners apart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tollway.conversations import sqlite_conversations
from tollway.conversations.sqlite_conversations import SqliteConversationStore
from tollway.conversations.stored import ConversationConflict, ConversationNotFound


def item(n: int) -> dict[str, object]:
    return {"id": f"msg_{n}", "type": "message", "role": "user", "content": str(n)}


async def test_versions_turns_and_forks(tmp_path: Path) -> None:
    store = SqliteConversationStore(tmp_path / "s.sqlite3")
    worker_b = SqliteConversationStore(tmp_path / "s.sqlite3")
    try:
        created = await store.create_conversation("app:1", "conv_a", {"k": "v"}, [item(0)], 1.0)
        assert created.version == 1
        current = await worker_b.append("app:1", "conv_a", [item(1)], expect=1)
        _, items = await worker_b.conversation_items("app:1", "conv_a")
        assert current.version == 2 and [i["id"] for i in items] == ["msg_0", "msg_1"]
        with pytest.raises(ConversationConflict) as info:
            await store.append("app:1", "conv_a", [item(2)], expect=1)
        assert info.value.current.version == 2
        # A turn holds the conversation: other writes wait for its end.
        held = await store.append("app:1", "conv_a", [item(2)], None, turn="resp_1")
        assert held.turn == "resp_1"
        with pytest.raises(ConversationConflict):
            await worker_b.update_conversation("app:1", "conv_a", {}, None)
        await worker_b.end_turn("app:1", "conv_a", "resp_2", [item(9)])  # not its turn
        await worker_b.end_turn("app:1", "conv_a", "resp_1", [item(3)])
        current, items = await store.conversation_items("app:1", "conv_a")
        assert (current.version, current.turn) == (4, None)
        assert [i["id"] for i in items] == ["msg_0", "msg_1", "msg_2", "msg_3"]
        forked = await store.fork("app:1", "conv_a", "msg_1", "conv_b", 2.0)
        assert forked.metadata == {"k": "v"}
        _, kept = await worker_b.conversation_items("app:1", "conv_b")
        assert [i["id"] for i in kept] == ["msg_0", "msg_1"]
        with pytest.raises(ConversationNotFound):
            await store.fork("app:1", "conv_a", "msg_nope", "conv_c", 2.0)
        # Owners apart.
        assert await store.conversation("app:2", "conv_a") is None
        with pytest.raises(ConversationNotFound):
            await store.append("app:2", "conv_a", [item(5)], None)
        assert await worker_b.delete_conversation("app:2", "conv_a") is False
        assert await worker_b.delete_conversation("app:1", "conv_a") is True
        await store.end_turn("app:1", "conv_a", "resp_3", [item(7)])  # gone: nothing happens
        assert await store.conversation("app:1", "conv_a") is None
    finally:
        store.close()
        worker_b.close()


async def test_a_turn_that_never_ends_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteConversationStore(tmp_path / "s.sqlite3")
    try:
        await store.create_conversation("key:k", "conv_a", {}, [], time.time())
        await store.append("key:k", "conv_a", [item(1)], None, turn="resp_dead")
        monkeypatch.setattr(sqlite_conversations, "TURN_HELD_S", 0.0)
        time.sleep(0.01)
        current = await store.append("key:k", "conv_a", [item(2)], None)
        assert current.turn is None and current.version == 3
        # The dead turn's end, should it come after all, adds nothing.
        await store.end_turn("key:k", "conv_a", "resp_dead", [item(3)])
        _, items = await store.conversation_items("key:k", "conv_a")
        assert [i["id"] for i in items] == ["msg_1", "msg_2"]
    finally:
        store.close()
