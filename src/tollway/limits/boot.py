"""A node's counters, from boot to each worker: the shared-memory table is made by the
supervisor before it forks (so every worker counts in the same one), and with `--redis` each
worker makes its own Redis connection after the fork, the table then serving as its fallback.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from tollway.limits.counters import CounterHealth, CounterStore
from tollway.limits.local import DEFAULT_SLOTS, SharedCounters
from tollway.limits.periods import period_at
from tollway.limits.redis import RedisCounters
from tollway.limits.resp import parse_url

log = logging.getLogger("tollway.limits")


class NodeCounters:
    def __init__(
        self,
        workers: int,
        redis_url: str | None,
        slots: int = DEFAULT_SLOTS,
        wait_s: float = 0.05,
    ) -> None:
        if redis_url is not None:
            parse_url(redis_url)  # a malformed URL stops the start (ValueError)
        self.redis_url = redis_url
        # How long a call waits on Redis before the fallback decides it.
        self.wait_s = wait_s
        self.shared = SharedCounters.for_workers(workers, slots)
        self.node_id = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._redis: RedisCounters | None = None
        # Budgets' spend so far this period, from the call records: (counter, USD, period end).
        self.seeds: list[tuple[str, float, float]] = []

    def seed_budgets(
        self,
        rules: Iterable[tuple[str, str]],
        zone: ZoneInfo,
        spend_since: Callable[[str, datetime], Mapping[int, Decimal]],
    ) -> int:
        """Start each budget's period at what the call records say was spent in it so far
        (`rules`: (scope, period) pairs; `spend_since(scope, since)`: USD by id). In the
        shared table now; in Redis by each worker as it starts, where a period already
        counted there is left as it is."""
        now = time.time()
        for scope, kind in sorted(set(rules)):
            period = period_at(kind, zone, now)
            spent = spend_since(scope, datetime.fromtimestamp(period.start, UTC))
            for owner, amount in spent.items():
                name = f"b:{scope}:{owner}:{kind}:{period.label}"
                self.seeds.append((name, float(amount), period.end))
        for name, usd, until in self.seeds:
            self.shared.seed_spend(name, usd, until)
        return len(self.seeds)

    def for_this_process(self) -> CounterStore:
        """The store this process counts in: Redis (one connection per worker) or the node's
        shared memory."""
        if self.redis_url is None:
            return self.shared
        redis = self._redis
        if redis is None or not redis.holder.startswith(f"{self.node_id}:{os.getpid()}:"):
            redis = self._redis = RedisCounters(
                self.redis_url, self.shared, self.node_id, timeout_s=self.wait_s
            )
            for name, amount, until in self.seeds:
                redis.seed_spend(name, amount, until)
        return redis

    async def start(self) -> None:
        """In the worker's event loop, before it says it is ready."""
        if self._redis is not None:
            await self._redis.start()

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.stop()

    def problem(self) -> str | None:
        """Why shared counting is off now (for /readyz); None when all is well."""
        return self._redis.problem if self._redis is not None else None

    def health(self) -> CounterHealth:
        """The counters' state, for the metrics."""
        if self._redis is not None:
            return self._redis.health()
        return self.shared.health()
