"""A stored response, and what a store of them offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response the gateway keeps: the input it was made from (the whole conversation up
    to it, its predecessors' included, each item with an id), and the Response object, once
    it has one (None while the call is in progress)."""

    id: str
    created_at: float
    input: list[dict[str, Any]]
    response: dict[str, Any] | None
    status: str  # "in_progress", "completed", "incomplete", "failed", "kept_upstream"
    # The provider that keeps this response itself (one with a Responses API of its own,
    # which the call passed through to): the gateway keeps only whose it is. None: the
    # gateway keeps it whole.
    kept_by: str | None = None

    @property
    def output(self) -> list[dict[str, Any]]:
        output = (self.response or {}).get("output")
        return output if isinstance(output, list) else []


class ResponseStore(Protocol):
    """Stored responses, by owner (an app, or a key outside the store): one owner never
    reads, changes or learns of another's."""

    async def begin(
        self, owner: str, response_id: str, items: list[dict[str, Any]], created_at: float
    ) -> None:
        """Keep a response as it starts (in progress), with its input."""

    async def complete(self, owner: str, response_id: str, response: dict[str, Any]) -> None:
        """The response as it ended (completed, incomplete or failed)."""

    async def keep_upstream(
        self, owner: str, response_id: str, provider: str, created_at: float
    ) -> None:
        """A response its provider keeps (`provider`'s id for it): the gateway keeps whose
        it is and where, so that only its owner reaches it, at that provider."""

    async def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation the gateway keeps: its items are in the store beside it. `version`
    counts its writes: a write may state the version it extends, and fails if another came
    first. `turn` is the response being made in it, if one is (its input is in already, its
    output comes when it ends); no other write lands meanwhile."""

    id: str
    created_at: float
    metadata: dict[str, str]
    version: int
    turn: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": int(self.created_at),
            "metadata": self.metadata,
            "version": self.version,
        }


class ConversationNotFound(Exception):
    """No such conversation (or item) for this owner."""


class ConversationConflict(Exception):
    """A write that states a version another write has overtaken, or one that comes while a
    response is being made in the conversation."""

    def __init__(self, message: str, current: Conversation) -> None:
        super().__init__(message)
        self.current = current


class ConversationStore(Protocol):
    """Conversations, by owner, as ResponseStore keeps responses. Every write is one
    transaction: it lands whole, on the version it saw, or not at all."""

    async def create_conversation(
        self,
        owner: str,
        conversation_id: str,
        metadata: dict[str, str],
        items: list[dict[str, Any]],
        created_at: float,
    ) -> Conversation: ...

    async def conversation(self, owner: str, conversation_id: str) -> Conversation | None: ...

    async def conversation_items(
        self, owner: str, conversation_id: str
    ) -> tuple[Conversation, list[dict[str, Any]]]:
        """The conversation and its items, oldest first (ConversationNotFound)."""

    async def update_conversation(
        self, owner: str, conversation_id: str, metadata: dict[str, str], expect: int | None
    ) -> Conversation: ...

    async def delete_conversation(self, owner: str, conversation_id: str) -> bool: ...

    async def append(
        self,
        owner: str,
        conversation_id: str,
        items: list[dict[str, Any]],
        expect: int | None,
        turn: str | None = None,
    ) -> Conversation:
        """Add items at the end; with `turn`, a response begins in the conversation (nothing
        else is written until it ends)."""

    async def end_turn(
        self, owner: str, conversation_id: str, turn: str, items: list[dict[str, Any]]
    ) -> None:
        """The response `turn` ended: its output items are added, and writes are open."""

    async def delete_item(
        self, owner: str, conversation_id: str, item_id: str, expect: int | None
    ) -> Conversation: ...

    async def fork(
        self, owner: str, conversation_id: str, item_id: str, new_id: str, created_at: float
    ) -> Conversation:
        """A new conversation with the items up to `item_id` (included)."""

    async def summaries(self, owner: str, covers: list[str]) -> dict[str, str]:
        """Summaries made before, by the digest of the items each covers (context_fit)."""

    async def keep_summary(self, owner: str, covers: str, summary: str) -> None: ...

    def close(self) -> None: ...
