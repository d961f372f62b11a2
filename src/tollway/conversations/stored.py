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
    status: str  # "in_progress", "completed", "incomplete", "failed"

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

    async def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...

    def close(self) -> None: ...
