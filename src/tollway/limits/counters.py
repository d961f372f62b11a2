"""What every counter store offers: one atomic check-and-take of several counters at once, and
settling afterwards.

Three kinds of counter, each named by a string (`rules.py` builds the names):

- BUCKET: a token bucket kept as the level used. The level drains at `rate` units a second;
  a demand of `amount` passes while `level + amount <= limit` (the bucket's size: the burst).
  Requests per minute take 1, tokens per minute take an estimate that is settled afterwards.
- GAUGE: amounts held while a call runs (concurrent requests). A demand passes while
  `held + amount <= limit`; settling gives it back, whatever the call's outcome.
- BUDGET: money spent in one period, plus what calls in flight reserved. A demand passes while
  `spent + reserved < limit` (some budget is left); it reserves its estimated cost, and
  settling swaps the reservation for the real cost.

`admit` checks every demand of a call and takes from all of them, or from none: a call refused
by one counter consumes nothing from the others. Held amounts (gauges, reservations) are kept
per holder (a worker, or a node's worker in Redis), so that a holder that dies cannot leak
them: its share is dropped when its place is taken again (local) or when its lease lapses
(Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

BUCKET = 0
GAUGE = 1
BUDGET = 2

# (kind, name, amount, limit, rate, until)
#   BUCKET: units to take, the bucket's size, units drained a second, unused
#   GAUGE:  units to hold, the most that may be held, unused, unused
#   BUDGET: cost to reserve (USD), the budget (USD), 1.0 to let calls through while a shared
#           store is unavailable (else they are refused), the period's end (epoch seconds)
Demand = tuple[int, str, float, float, float, float]

# (kind, name, give_back, spend, rate, until)
#   BUCKET: units to give back (negative: take more), 0, the bucket's drain rate, 0
#   GAUGE:  units held to release, 0, 0, 0
#   BUDGET: the reservation to release, the real cost to add, 0, the period's end
Settlement = tuple[int, str, float, float, float, float]

# Told of each budget settlement once applied: (counter name, spent before, spent after).
SpendHook = Callable[[str, float, float], None]


@dataclass(slots=True, init=False)
class Outcome:
    """A decision on one call's demands."""

    admitted: bool
    # The index of the first demand that refused (-1 when admitted).
    failed: int = -1
    # Per demand, what is used after the decision: a bucket's level, a gauge's holdings, a
    # budget's spend plus reservations.
    used: list[float] = field(default_factory=list)
    # When refused: seconds until the refusing demand could pass (0: unknown).
    retry_after: float = 0.0
    # Decided without the shared store (Redis slow or down), by the documented fallback.
    fallback: bool = False

    # Written out rather than generated: a dataclass's generated __init__ is plain Python
    # (an interpreted frame on every call's decision), this one is compiled with the module.
    def __init__(
        self,
        admitted: bool,
        failed: int = -1,
        used: list[float] | None = None,
        retry_after: float = 0.0,
        fallback: bool = False,
    ) -> None:
        self.admitted = admitted
        self.failed = failed
        self.used = [] if used is None else used
        self.retry_after = retry_after
        self.fallback = fallback


class CountersFull(RuntimeError):
    """The node's counter table has no room for another live counter."""


@dataclass(frozen=True, slots=True)
class CounterHealth:
    """What /readyz and the metrics report of a counter store."""

    backend: str  # "local" or "redis"
    # False while the shared store cannot be used and the fallback decides.
    shared: bool = True
    problem: str | None = None
    since: float = 0.0
    # Decisions taken by the fallback, and counters refused for want of room, so far.
    fallback_decisions: int = 0
    table_full: int = 0
    nodes: int = 1


class CounterStore(Protocol):
    def admit(self, demands: Sequence[Demand]) -> Outcome | asyncio.Future[Outcome]:
        """Check every demand and take from all of them, or from none. A store shared across
        nodes answers with a future (its decisions are batched per event-loop tick)."""
        ...

    def settle(
        self,
        items: Sequence[Settlement],
        on_spend: SpendHook | None = None,
        fallback: bool = False,
    ) -> None:
        """Give back and add what a finished call leaves behind; never waits. `fallback`: the
        call was admitted by the fallback (the shared store was unavailable)."""
        ...

    def seed_spend(self, name: str, spent: float, until: float) -> None:
        """Start a budget's period at `spent` (from the call records) unless it has begun."""
        ...

    def health(self) -> CounterHealth: ...
