"""One periodic sweep that enforces every connection deadline in a worker.

A timer handle per request (create, then cancel) costs more than the rest of the request's
bookkeeping; instead each connection stores a plain `deadline` (loop time, 0 for none) and
this sweep calls `on_deadline()` on those past it. The price is up to one `interval_s` of
slack, which is fine for timeouts counted in seconds.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class HasDeadline(Protocol):
    deadline: float

    def on_deadline(self) -> None: ...


class Deadlines:
    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.tracked: set[HasDeadline] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval_s)
            now = loop.time()
            expired = [c for c in self.tracked if 0.0 < c.deadline < now]
            for item in expired:
                item.on_deadline()
