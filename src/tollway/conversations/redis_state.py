"""Stored responses and conversations in Redis, where a cluster's nodes count their limits
(`--redis`): every node sees every app's state. Each write that reads before it writes (a
version to check, a turn in progress) is one Lua script, so it is atomic whatever the number
of nodes. An owner's keys share a hash tag (`{owner}`), so that a fork, which touches two
conversations, stays in one slot of a Redis Cluster.

Keys: `tollway:resp:{owner}:ID` (hash: created_at, status, input, response, and kept_by for
a response its provider keeps; expires with the retention), `tollway:conv:{owner}:ID` (hash:
created_at, metadata, version, turn, turn_since) and `...:items` (list of JSON items),
`tollway:sum:{owner}:DIGEST` (a summary).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from tollway.conversations.sqlite_conversations import TURN_HELD_S
from tollway.conversations.sqlite_store import DEFAULT_RETENTION_S
from tollway.conversations.stored import (
    Conversation,
    ConversationConflict,
    ConversationNotFound,
    StoredResponse,
)

_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'created_at', ARGV[1], 'status', 'in_progress', 'input', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
_COMPLETE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'response', ARGV[2])
return 1
"""
# KEYS[1]: the conversation, KEYS[2]: its items. ARGV[1]: now, ARGV[2]: how long a turn holds.
_LOAD = """
local function load()
  if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
  local m = redis.call('HMGET', KEYS[1], 'version', 'turn', 'turn_since', 'created_at', 'metadata')
  local turn = m[2] or ''
  if turn ~= '' and tonumber(ARGV[1]) - tonumber(m[3] or '0') > tonumber(ARGV[2]) then
    turn = ''
  end
  return {version = tonumber(m[1]), turn = turn, created = m[4], metadata = m[5]}
end
local function state(kind, c)
  return {kind, c.version, c.turn, c.created, c.metadata}
end
local function check(c, expect)
  if c.turn ~= '' then return state('busy', c) end
  if expect ~= '' and tonumber(expect) ~= c.version then return state('stale', c) end
  return nil
end
-- The conversation, open to a write that expects ARGV[3] ('' for any version); or the reply
-- that refuses it.
local function writable()
  local c = load()
  if not c then return nil, {'missing'} end
  local refused = check(c, ARGV[3])
  if refused then return nil, refused end
  return c, nil
end
local function bump(c, turn)
  c.version = c.version + 1
  c.turn = turn
  redis.call('HSET', KEYS[1], 'version', c.version, 'turn', turn, 'turn_since', ARGV[1])
  return state('ok', c)
end
"""
# ARGV[3]: the version expected (or ''), ARGV[4]: the turn that begins (or ''), then items.
_APPEND = (
    _LOAD
    + """
local c, refused = writable()
if not c then return refused end
for i = 5, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
return bump(c, ARGV[4])
"""
)
# ARGV[3]: the turn that ends, then its items.
_END_TURN = (
    _LOAD
    + """
local c = load()
if not c or c.turn ~= ARGV[3] or c.turn == '' then return 0 end
for i = 4, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
bump(c, '')
return 1
"""
)
# ARGV[3]: the version expected (or ''), ARGV[4]: the metadata (JSON).
_UPDATE = (
    _LOAD
    + """
local c, refused = writable()
if not c then return refused end
redis.call('HSET', KEYS[1], 'metadata', ARGV[4])
c.metadata = ARGV[4]
return bump(c, '')
"""
)
# ARGV[3]: the version expected (or ''), ARGV[4]: the item's id.
_DELETE_ITEM = (
    _LOAD
    + """
local c, refused = writable()
if not c then return refused end
local items = redis.call('LRANGE', KEYS[2], 0, -1)
for i, raw in ipairs(items) do
  if cjson.decode(raw)['id'] == ARGV[4] then
    redis.call('LSET', KEYS[2], i - 1, '\\0deleted')
    redis.call('LREM', KEYS[2], 1, '\\0deleted')
    return bump(c, '')
  end
end
return {'noitem'}
"""
)
# KEYS[3], KEYS[4]: the new conversation and its items. ARGV[3]: the last item kept.
_FORK = (
    _LOAD
    + """
local c = load()
if not c then return {'missing'} end
local items = redis.call('LRANGE', KEYS[2], 0, -1)
for i, raw in ipairs(items) do
  if cjson.decode(raw)['id'] == ARGV[3] then
    redis.call('HSET', KEYS[3], 'created_at', ARGV[1], 'metadata', c.metadata, 'version', 1,
               'turn', '', 'turn_since', ARGV[1])
    for j = 1, i do redis.call('RPUSH', KEYS[4], items[j]) end
    return {'ok', c.metadata}
  end
end
return {'noitem'}
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisState:
    """One Redis connection pool for both stores of a worker."""

    def __init__(self, url: str) -> None:
        self.client: Any = aioredis.from_url(url)
        self.scripts: dict[str, Any] = {}

    def script(self, name: str, source: str) -> Any:
        found = self.scripts.get(name)
        if found is None:
            found = self.scripts[name] = self.client.register_script(source)
        return found

    def close(self) -> None:
        self.client = None  # the pool's sockets go with the worker


class RedisResponseStore:
    def __init__(self, state: RedisState, retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.state = state
        self.retention_s = retention_s

    @staticmethod
    def _key(owner: str, response_id: str) -> str:
        return f"tollway:resp:{{{owner}}}:{response_id}"

    async def begin(
        self, owner: str, response_id: str, items: list[dict[str, Any]], created_at: float
    ) -> None:
        begun = await self.state.script("begin", _BEGIN)(
            keys=[self._key(owner, response_id)],
            args=[repr(created_at), orjson.dumps(items), int(self.retention_s)],
        )
        if not begun:
            raise ValueError(f"response {response_id} is already kept")

    async def keep_upstream(
        self, owner: str, response_id: str, provider: str, created_at: float
    ) -> None:
        key = self._key(owner, response_id)
        async with self.state.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "created_at": repr(created_at),
                    "status": "kept_upstream",
                    "input": b"[]",
                    "kept_by": provider,
                },
            )
            pipe.expire(key, int(self.retention_s))
            await pipe.execute()

    async def complete(self, owner: str, response_id: str, response: dict[str, Any]) -> None:
        status = str(response.get("status") or "completed")
        await self.state.script("complete", _COMPLETE)(
            keys=[self._key(owner, response_id)], args=[status, orjson.dumps(response)]
        )

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        created, status, items, response, kept_by = await self.state.client.hmget(
            self._key(owner, response_id), "created_at", "status", "input", "response", "kept_by"
        )
        if created is None:
            return None
        return StoredResponse(
            response_id,
            float(created),
            orjson.loads(items),
            orjson.loads(response) if response is not None else None,
            _text(status),
            _text(kept_by) if kept_by is not None else None,
        )

    async def delete(self, owner: str, response_id: str) -> bool:
        return bool(await self.state.client.delete(self._key(owner, response_id)))

    def close(self) -> None:
        self.state.close()


class RedisConversationStore:
    def __init__(self, state: RedisState) -> None:
        self.state = state

    @staticmethod
    def _keys(owner: str, conversation_id: str) -> list[str]:
        key = f"tollway:conv:{{{owner}}}:{conversation_id}"
        return [key, key + ":items"]

    def _answer(self, conversation_id: str, reply: list[Any]) -> Conversation:
        """A script's reply as a conversation, or the error it says."""
        kind = _text(reply[0])
        if kind == "missing":
            raise ConversationNotFound(conversation_id)
        if kind == "noitem":
            raise ConversationNotFound("")
        _, version, turn, created, metadata = reply
        current = Conversation(
            conversation_id,
            float(created),
            orjson.loads(metadata),
            int(version),
            _text(turn) or None,
        )
        if kind == "busy":
            raise ConversationConflict(
                f"A response ({current.turn}) is being made in conversation "
                f"'{conversation_id}'; write again when it has ended.",
                current,
            )
        if kind == "stale":
            raise ConversationConflict(
                f"Conversation '{conversation_id}' is at version {current.version}: another "
                "write came first. Read it again, then write.",
                current,
            )
        return current

    def _now(self) -> list[Any]:
        return [repr(time.time()), repr(TURN_HELD_S)]

    async def create_conversation(
        self,
        owner: str,
        conversation_id: str,
        metadata: dict[str, str],
        items: list[dict[str, Any]],
        created_at: float,
    ) -> Conversation:
        key, items_key = self._keys(owner, conversation_id)
        async with self.state.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "created_at": repr(created_at),
                    "metadata": orjson.dumps(metadata),
                    "version": 1,
                    "turn": "",
                    "turn_since": 0,
                },
            )
            if items:
                pipe.rpush(items_key, *(orjson.dumps(item) for item in items))
            await pipe.execute()
        return Conversation(conversation_id, created_at, metadata, 1)

    async def conversation(self, owner: str, conversation_id: str) -> Conversation | None:
        try:
            current, _ = await self._read(owner, conversation_id, with_items=False)
        except ConversationNotFound:
            return None
        return current

    async def conversation_items(
        self, owner: str, conversation_id: str
    ) -> tuple[Conversation, list[dict[str, Any]]]:
        return await self._read(owner, conversation_id, with_items=True)

    async def _read(
        self, owner: str, conversation_id: str, with_items: bool
    ) -> tuple[Conversation, list[dict[str, Any]]]:
        key, items_key = self._keys(owner, conversation_id)
        async with self.state.client.pipeline(transaction=True) as pipe:
            pipe.hmget(key, "created_at", "metadata", "version", "turn", "turn_since")
            if with_items:
                pipe.lrange(items_key, 0, -1)
            replies = await pipe.execute()
        created, metadata, version, turn, since = replies[0]
        if created is None:
            raise ConversationNotFound(conversation_id)
        held = _text(turn or b"")
        if held and time.time() - float(since or 0) > TURN_HELD_S:
            held = ""
        current = Conversation(
            conversation_id, float(created), orjson.loads(metadata), int(version), held or None
        )
        items = [orjson.loads(raw) for raw in replies[1]] if with_items else []
        return current, items

    async def update_conversation(
        self, owner: str, conversation_id: str, metadata: dict[str, str], expect: int | None
    ) -> Conversation:
        reply = await self.state.script("update", _UPDATE)(
            keys=self._keys(owner, conversation_id),
            args=[*self._now(), "" if expect is None else expect, orjson.dumps(metadata)],
        )
        return self._answer(conversation_id, reply)

    async def delete_conversation(self, owner: str, conversation_id: str) -> bool:
        key, items_key = self._keys(owner, conversation_id)
        async with self.state.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.delete(items_key)
            gone, _ = await pipe.execute()
        return bool(gone)

    async def append(
        self,
        owner: str,
        conversation_id: str,
        items: list[dict[str, Any]],
        expect: int | None,
        turn: str | None = None,
    ) -> Conversation:
        reply = await self.state.script("append", _APPEND)(
            keys=self._keys(owner, conversation_id),
            args=[
                *self._now(),
                "" if expect is None else expect,
                turn or "",
                *(orjson.dumps(item) for item in items),
            ],
        )
        return self._answer(conversation_id, reply)

    async def end_turn(
        self, owner: str, conversation_id: str, turn: str, items: list[dict[str, Any]]
    ) -> None:
        await self.state.script("end_turn", _END_TURN)(
            keys=self._keys(owner, conversation_id),
            args=[*self._now(), turn, *(orjson.dumps(item) for item in items)],
        )

    async def delete_item(
        self, owner: str, conversation_id: str, item_id: str, expect: int | None
    ) -> Conversation:
        reply = await self.state.script("delete_item", _DELETE_ITEM)(
            keys=self._keys(owner, conversation_id),
            args=[*self._now(), "" if expect is None else expect, item_id],
        )
        if _text(reply[0]) == "noitem":
            raise ConversationNotFound(item_id)
        return self._answer(conversation_id, reply)

    async def fork(
        self, owner: str, conversation_id: str, item_id: str, new_id: str, created_at: float
    ) -> Conversation:
        reply = await self.state.script("fork", _FORK)(
            keys=[*self._keys(owner, conversation_id), *self._keys(owner, new_id)],
            args=[repr(created_at), repr(TURN_HELD_S), item_id],
        )
        kind = _text(reply[0])
        if kind == "missing":
            raise ConversationNotFound(conversation_id)
        if kind == "noitem":
            raise ConversationNotFound(item_id)
        return Conversation(new_id, created_at, orjson.loads(reply[1]), 1)

    async def summaries(self, owner: str, covers: list[str]) -> dict[str, str]:
        if not covers:
            return {}
        found = await self.state.client.mget([f"tollway:sum:{{{owner}}}:{c}" for c in covers])
        return {c: _text(s) for c, s in zip(covers, found, strict=True) if s is not None}

    async def keep_summary(self, owner: str, covers: str, summary: str) -> None:
        await self.state.client.set(
            f"tollway:sum:{{{owner}}}:{covers}", summary, ex=int(DEFAULT_RETENTION_S)
        )

    def close(self) -> None:
        self.state.close()
