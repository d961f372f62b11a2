"""A node's counters, from boot to each worker: the shared-memory table is made by the
supervisor before it forks (so every worker counts in the same one), and with `--redis` each
worker makes its own Redis connection after the fork, the table then serving as its fallback.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from tollway.limits.counters import CounterHealth, CounterStore
from tollway.limits.local import DEFAULT_SLOTS, SharedCounters
from tollway.limits.redis import RedisCounters
from tollway.limits.resp import parse_url

log = logging.getLogger("tollway.limits")


class NodeCounters:
    def __init__(self, workers: int, redis_url: str | None, slots: int = DEFAULT_SLOTS) -> None:
        if redis_url is not None:
            parse_url(redis_url)  # a malformed URL stops the start (ValueError)
        self.redis_url = redis_url
        self.shared = SharedCounters.for_workers(workers, slots)
        self.node_id = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._redis: RedisCounters | None = None

    def for_this_process(self) -> CounterStore:
        """The store this process counts in: Redis (one connection per worker) or the node's
        shared memory."""
        if self.redis_url is None:
            return self.shared
        redis = self._redis
        if redis is None or not redis.holder.startswith(f"{self.node_id}:{os.getpid()}:"):
            redis = self._redis = RedisCounters(self.redis_url, self.shared, self.node_id)
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
