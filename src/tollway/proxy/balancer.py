"""Choosing a deployment among a model's deployments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RoundRobin(Generic[T]):
    """Each call returns the next item in turn. Per worker process; no lock is needed
    because a worker runs one event loop thread."""

    __slots__ = ("_i", "_items")

    def __init__(self, items: Sequence[T]) -> None:
        if not items:
            raise ValueError("RoundRobin needs at least one item")
        self._items = tuple(items)
        self._i = -1

    def pick(self) -> T:
        items = self._items
        if len(items) == 1:
            return items[0]
        self._i = (self._i + 1) % len(items)
        return items[self._i]
