"""Counters shared by many nodes, in Redis: exact across nodes, without a general-purpose
client's round trip per call.

Each worker keeps one connection of its own (a raw asyncio protocol; replies parsed by hiredis,
the parser redis-py uses) and batches: every admission asked for during one turn of the event
loop goes out in a single EVALSHA of the counters' Lua script (scripts.py), which decides each
call atomically; settlements go out the same way. So a call costs its share of one pipelined
exchange (a few microseconds), and waits one Redis round trip before its upstream request.

When Redis is slow or down, no call waits on it for more than `timeout_s` (50 ms):
- a batch unanswered by then is decided locally, and Redis is left alone for a second (then
  tried again); a connection that stays silent is dropped and reconnected;
- rate limits fall back to this node's share of each limit (the limit divided by the number of
  live nodes last seen, counted in the node's shared memory), so the cluster as a whole stays
  near its limits;
- budgets refuse calls (503 `budget_unavailable`) unless configured to let them through;
- settlements wait in memory (merged per counter) and are applied once Redis is back; batches
  whose fate a lost connection hid are sent again and applied once (each has an id);
- a late answer that admitted a call the fallback already decided is given back at once;
- after a reconnection, the worker sets its share of every counter it holds to what it really
  holds, so nothing it held before the loss stays held;
- `health()` says so (readyz: degraded; metrics: the fallback's decisions).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import ssl
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis

from tollway.limits.counters import (
    BUCKET,
    BUDGET,
    GAUGE,
    CounterHealth,
    Demand,
    Outcome,
    Settlement,
    SpendHook,
)
from tollway.limits.local import SharedCounters
from tollway.limits.resp import Reply, RespProtocol, encode, parse_url
from tollway.limits.scripts import SCRIPT

log = logging.getLogger("tollway.limits")

PREFIX = "tollway:"
_BREAKER_S = 1.0
_HEARTBEAT_S = 1.0
_STALL_S = 1.0
_BACKLOG_MAX = 100_000


class _Batch:
    """Admissions sent in one command."""

    __slots__ = ("calls", "deadline", "late", "sent")

    def __init__(self, calls: list[tuple[Sequence[Demand], asyncio.Future[Outcome]]]) -> None:
        self.calls = calls
        self.sent = time.monotonic()
        self.late = False
        self.deadline: asyncio.TimerHandle | None = None


class RedisCounters:
    """The counter store of a node in a cluster (see the module's docstring). One per worker,
    made after the fork; `start()` connects before the worker says it is ready."""

    def __init__(
        self, url: str, fallback: SharedCounters, node: str, timeout_s: float = 0.05
    ) -> None:
        self.url = url
        self.options = parse_url(url)
        self.fallback = fallback
        self.node = node
        self.holder = f"{node}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.timeout_s = timeout_s
        self.nodes = 1
        self._proto: RespProtocol | None = None
        self._sha = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admits: list[tuple[Sequence[Demand], asyncio.Future[Outcome]]] = []
        self._settles: list[tuple[Settlement, SpendHook | None]] = []
        self._unacknowledged: dict[str, list[tuple[Settlement, SpendHook | None]]] = {}
        self._backlog: dict[tuple[int, str], list[Any]] = {}
        self._batches: deque[_Batch] = deque()
        self._flushing = False
        self._open_until = 0.0
        # Gauges and budgets this worker holds a share of (calls in flight), and every one it
        # held since the last resynchronisation.
        self._holding: dict[str, float] = {}
        self._touched: set[str] = set()
        self._seeds: list[tuple[str, float, float]] = []
        self._resync = False
        self._connecting: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._stopped = False
        self.problem: str | None = "not connected yet"
        self.since = time.time()
        self.fallback_decisions = 0

    # -- connecting ----------------------------------------------------------------------

    async def start(self, wait_s: float = 2.0) -> None:
        """Connect (waiting up to `wait_s`; after that the fallback decides while the
        connection is retried in the background) and start the heartbeat."""
        self._loop = asyncio.get_running_loop()
        self._connecting = self._loop.create_task(self._connect_forever())
        deadline = time.monotonic() + wait_s
        while self._proto is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._proto is None:
            log.error("redis at %s unreachable: counting locally until it is back", self._where())
        self._beat()

    def stop(self) -> None:
        self._stopped = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()

    def _where(self) -> str:
        if "path" in self.options:
            return str(self.options["path"])
        return f"{self.options.get('host', 'localhost')}:{self.options.get('port', 6379)}"

    async def _connect_forever(self) -> None:
        pause = 0.05
        while not self._stopped:
            try:
                await asyncio.wait_for(self._connect(), 1.0)
                return
            except (OSError, TimeoutError, RedisError) as exc:
                self._down(
                    f"cannot connect to redis at {self._where()}: {exc or type(exc).__name__}"
                )
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        options = self.options
        proto: RespProtocol
        if "path" in options:
            _, proto = await loop.create_unix_connection(
                lambda: RespProtocol(self._lost), options["path"]
            )
        else:
            context = ssl.create_default_context() if options["tls"] else None
            _, proto = await loop.create_connection(
                lambda: RespProtocol(self._lost),
                options.get("host", "localhost"),
                int(options.get("port", 6379)),
                ssl=context,
            )
        try:
            if options.get("password") is not None:
                auth: list[bytes | str | int | float] = ["AUTH"]
                if options.get("username"):
                    auth.append(options["username"])
                auth.append(options["password"])
                await self._call(proto, auth)
            if options.get("db"):
                await self._call(proto, ["SELECT", int(options["db"])])
            sha = await self._call(proto, ["SCRIPT", "LOAD", SCRIPT])
            self._sha = sha if isinstance(sha, bytes) else str(sha).encode()
            nodes = await self._call(proto, self._beat_command())
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        self.nodes = max(1, int(nodes))
        self._proto = proto
        if self._resync:
            self._send_resync()
        self._resend_unacknowledged()
        if self.problem is not None:
            log.warning("redis at %s in use (%d nodes)", self._where(), self.nodes)
        self.problem = None
        self.since = time.time()
        self._open_until = 0.0
        self._schedule()

    def _call(
        self, proto: RespProtocol, args: Sequence[bytes | str | int | float]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def reply(value: Any) -> None:
            if future.done():
                return
            if isinstance(value, hiredis.ReplyError):
                future.set_exception(RedisError(str(value)))
            else:
                future.set_result(value)

        proto.send(encode(args), [reply])
        return future

    def _lost(self, proto: RespProtocol, exc: Exception | None) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        if self._stopped:
            return
        self._down(f"lost the connection to redis at {self._where()}: {exc or 'closed'}")
        # Whatever was in flight: admissions are decided locally (their holds in Redis, if
        # any were taken, are undone by the resynchronisation); settlements are sent again.
        self._resync = True
        while self._batches:
            self._fall_back(self._batches.popleft())
        # Unanswered settlements stay in `_unacknowledged`, sent again once reconnected.
        proto.waiting.clear()
        if not self._stopped and self._loop is not None:
            self._connecting = self._loop.create_task(self._connect_forever())

    def _down(self, problem: str) -> None:
        if self.problem != problem:
            if self.problem is None:
                log.error(
                    "%s: rate limits use this node's share, budgets follow their setting", problem
                )
            self.problem = problem
            self.since = time.time()

    # -- the heartbeat -------------------------------------------------------------------

    def _beat_command(self) -> list[bytes | str | int | float]:
        return ["EVALSHA", self._sha, 0, "H", self.holder, PREFIX, self.node]

    def _beat(self) -> None:
        loop = self._loop
        if loop is None or self._stopped:
            return
        self._heartbeat = loop.call_later(_HEARTBEAT_S, self._beat)
        proto = self._proto
        if proto is None:
            return
        if self._batches and time.monotonic() - self._batches[0].sent > _STALL_S:
            log.error(
                "redis at %s has not answered for %g s: reconnecting", self._where(), _STALL_S
            )
            if proto.transport is not None:
                proto.transport.abort()
            return
        sent = time.monotonic()

        def reply(value: Any) -> None:
            if isinstance(value, int):
                self.nodes = max(1, value)
                if self._open_until and time.monotonic() - sent < self.timeout_s:
                    self._open_until = 0.0  # answered promptly again
                    self.problem = None

        proto.send(encode(self._beat_command()), [reply])

    # -- the store's operations ----------------------------------------------------------

    def admit(self, demands: Sequence[Demand]) -> Outcome | asyncio.Future[Outcome]:
        if self._proto is None or (self._open_until and time.monotonic() < self._open_until):
            return self._local(demands)
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[Outcome] = loop.create_future()
        self._admits.append((demands, future))
        self._schedule()
        return future

    def settle(
        self,
        items: Sequence[Settlement],
        on_spend: SpendHook | None = None,
        fallback: bool = False,
    ) -> None:
        if fallback:
            self._settle_fallback(items, on_spend)
            return
        for item in items:
            if item[0] != BUCKET:
                left = self._holding.get(item[1], 0.0) - item[2]
                if left > 1e-9:
                    self._holding[item[1]] = left
                else:
                    self._holding.pop(item[1], None)
            self._settles.append((item, on_spend))
        self._schedule()

    def seed_spend(self, name: str, spent: float, until: float) -> None:
        self._seeds.append((name, spent, until))
        self._schedule()

    def health(self) -> CounterHealth:
        return CounterHealth(
            "redis",
            shared=self.problem is None,
            problem=self.problem,
            since=self.since,
            fallback_decisions=self.fallback_decisions,
            table_full=self.fallback.health().table_full,
            nodes=self.nodes,
        )

    # -- batching ------------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._flushing and self._loop is not None:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        proto = self._proto
        if proto is None:
            for demands, future in self._admits:
                if not future.done():
                    future.set_result(self._local(demands))
            self._admits = []
            self._keep_for_later(self._settles)
            self._settles = []
            return
        for name, spent, until in self._seeds:
            proto.send(
                encode(
                    ["EVALSHA", self._sha, 1, PREFIX + name, "D", self.holder, PREFIX, spent, until]
                ),
                [_ignore],
            )
        self._seeds = []
        data: list[bytes] = []
        replies: list[Reply] = []
        if self._admits:
            batch = _Batch(self._admits)
            self._admits = []
            data.append(self._admit_command(batch))
            replies.append(functools.partial(self._admitted, batch))
            self._batches.append(batch)
            assert self._loop is not None
            batch.deadline = self._loop.call_later(self.timeout_s, self._late, batch)
        settles = self._settles
        if self._backlog:
            settles = self._take_backlog() + settles
        self._settles = []
        if settles:
            batch_id = uuid.uuid4().hex
            self._unacknowledged[batch_id] = settles
            data.append(self._settle_command(batch_id, settles))
            replies.append(functools.partial(self._settled, batch_id))
        if data:
            proto.send(b"".join(data), replies)

    def _admit_command(self, batch: _Batch) -> bytes:
        keys: list[bytes | str | int | float] = []
        args: list[bytes | str | int | float] = ["A", self.holder, PREFIX, len(batch.calls)]
        for demands, _future in batch.calls:
            args.append(len(demands))
            for kind, name, amount, limit, rate, until in demands:
                keys.append(PREFIX + name)
                args += [kind, amount, limit, rate, until]
        return encode(["EVALSHA", self._sha, len(keys), *keys, *args])

    def _settle_command(
        self, batch_id: str, settles: list[tuple[Settlement, SpendHook | None]]
    ) -> bytes:
        keys: list[bytes | str | int | float] = []
        args: list[bytes | str | int | float] = ["S", self.holder, PREFIX, batch_id]
        for (kind, name, give_back, spend, rate, until), _hook in settles:
            keys.append(PREFIX + name)
            args += [kind, give_back, spend, rate, until]
        return encode(["EVALSHA", self._sha, len(keys), *keys, *args])

    def _admitted(self, batch: _Batch, value: Any) -> None:
        if batch.deadline is not None:
            batch.deadline.cancel()
        with contextlib.suppress(ValueError):
            self._batches.remove(batch)
        if not isinstance(value, list) or len(value) != len(batch.calls):
            log.error("redis refused a batch of admissions: %s", value)
            if not batch.late:
                self._fall_back(batch)
            return
        for (demands, future), answer in zip(batch.calls, value, strict=True):
            admitted = answer[0] == 1
            outcome = Outcome(
                admitted,
                int(answer[1]),
                [float(x) for x in answer[3:]],
                int(answer[2]) / 1000.0,
            )
            if batch.late:
                if admitted:  # the fallback decided this call already: give back what it took
                    self._give_back(demands)
                continue
            if admitted:
                for kind, name, amount, _limit, _rate, _until in demands:
                    if kind != BUCKET:
                        self._holding[name] = self._holding.get(name, 0.0) + amount
                        self._touched.add(name)
            if not future.done():
                future.set_result(outcome)

    def _late(self, batch: _Batch) -> None:
        """A batch Redis did not answer in time: decided locally; Redis rests a second."""
        if batch.late or batch not in self._batches:
            return
        self._open_until = time.monotonic() + _BREAKER_S
        self._down(f"redis at {self._where()} did not answer within {self.timeout_s * 1000:g} ms")
        self._fall_back(batch)

    def _fall_back(self, batch: _Batch) -> None:
        batch.late = True
        if batch.deadline is not None:
            batch.deadline.cancel()
        for demands, future in batch.calls:
            if not future.done():
                future.set_result(self._local(demands))

    def _give_back(self, demands: Sequence[Demand]) -> None:
        for kind, name, amount, _limit, rate, until in demands:
            if kind == BUCKET:
                self._settles.append(((BUCKET, name, amount, 0.0, rate, 0.0), None))
            else:
                self._settles.append(((kind, name, amount, 0.0, 0.0, until), None))
        self._schedule()

    def _settled(self, batch_id: str, value: Any) -> None:
        settles = self._unacknowledged.pop(batch_id, None)
        if settles is None:
            return
        if isinstance(value, (hiredis.ReplyError, RedisError)):
            log.error("redis refused a batch of settlements (%s); keeping it", value)
            self._keep_for_later(settles)
            return
        if not isinstance(value, list):
            return
        for index, before, after in value:
            item, hook = settles[int(index)]
            if hook is not None:
                hook(item[1], float(before), float(after))

    def _resend_unacknowledged(self) -> None:
        """Batches sent on a connection that was lost: sent again under the same id (Redis
        applies each id once)."""
        proto = self._proto
        if proto is None or not self._unacknowledged:
            return
        for batch_id, settles in list(self._unacknowledged.items()):
            proto.send(
                self._settle_command(batch_id, settles),
                [functools.partial(self._settled, batch_id)],
            )

    def _keep_for_later(self, settles: list[tuple[Settlement, SpendHook | None]]) -> None:
        """Settlements that cannot be sent now, merged per counter (bounded)."""
        backlog = self._backlog
        for (kind, name, give_back, spend, rate, until), hook in settles:
            kept = backlog.get((kind, name))
            if kept is None:
                if len(backlog) >= _BACKLOG_MAX:
                    log.error("settlement backlog full: dropping one for %s", name)
                    continue
                backlog[(kind, name)] = [give_back, spend, rate, until, hook]
            else:
                kept[0] += give_back
                kept[1] += spend
                kept[3] = max(kept[3], until)
                kept[4] = hook or kept[4]

    def _take_backlog(self) -> list[tuple[Settlement, SpendHook | None]]:
        backlog, self._backlog = self._backlog, {}
        return [
            ((kind, name, give_back, spend, rate, until), hook)
            for (kind, name), (give_back, spend, rate, until, hook) in backlog.items()
        ]

    def _send_resync(self) -> None:
        """After a lost connection: this worker's share of each counter it may hold, set to
        what its calls in flight really hold."""
        self._resync = False
        proto = self._proto
        if proto is None:
            return
        names = sorted(self._touched | set(self._holding))
        self._touched = set(self._holding)
        if not names:
            return
        command: list[bytes | str | int | float] = ["EVALSHA", self._sha, len(names)]
        command += [PREFIX + name for name in names]
        command += ["Y", self.holder, PREFIX]
        command += [self._holding.get(name, 0.0) for name in names]
        proto.send(encode(command), [_ignore])

    # -- the fallback ----------------------------------------------------------------------

    def _local(self, demands: Sequence[Demand]) -> Outcome:
        """This node's share of each limit, in the node's shared memory."""
        self.fallback_decisions += 1
        share = float(max(1, self.nodes))
        local: list[Demand] = []
        where: list[int] = []
        for i, (kind, name, amount, limit, rate, until) in enumerate(demands):
            if kind == BUDGET:
                if rate:
                    continue  # configured to let calls through while Redis is away
                return Outcome(False, i, [], 1.0, fallback=True)
            if kind == BUCKET:
                local.append((kind, name, amount, limit / share, rate / share, until))
            else:
                local.append((kind, name, amount, max(1.0, math.floor(limit / share)), rate, until))
            where.append(i)
        outcome = self.fallback.admit(local)
        used = [0.0] * len(demands)
        for j, value in enumerate(outcome.used):
            used[where[j]] = value
        failed = where[outcome.failed] if outcome.failed >= 0 else -1
        return Outcome(outcome.admitted, failed, used, outcome.retry_after, fallback=True)

    def _settle_fallback(self, items: Sequence[Settlement], on_spend: SpendHook | None) -> None:
        share = float(max(1, self.nodes))
        local: list[Settlement] = []
        for kind, name, give_back, spend, rate, until in items:
            if kind == BUDGET:
                # No reservation was taken; the cost is owed to the shared budget.
                self._settles.append(((BUDGET, name, 0.0, spend, 0.0, until), on_spend))
            elif kind == BUCKET:
                local.append((kind, name, give_back, spend, rate / share, until))
            elif kind == GAUGE:
                local.append((kind, name, give_back, spend, rate, until))
        if local:
            self.fallback.settle(local)
        self._schedule()


def _ignore(value: Any) -> None:
    if isinstance(value, hiredis.ReplyError):
        log.error("redis: %s", value)


class RedisError(Exception):
    """Redis answered with an error, or the connection failed."""
