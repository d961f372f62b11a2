"""One node's counters, shared by all its workers: a table in anonymous shared memory and one
process-shared lock, both made by the supervisor before it forks the workers.

So a limit is exact across the node's workers (never split per worker), at the cost of a
lock round and a few memory reads per call: no system call when the lock is free.

The table is open-addressed: a counter's name hashes (BLAKE2b, 64 bits) to a home slot, and
the counter lives in the first slot of a window of `_WINDOW` slots from there that is free or
whose counter has lapsed (a bucket drained to empty, a gauge holding nothing, a budget whose
period is over). Each worker remembers where its counters live and checks the fingerprint on
every use, so a slot taken over by another counter is noticed. A slot is

    fingerprint (int64) | until (float64) | a | b | one float64 per holder ("lane")

with `a`, `b` the bucket's level and time of that level, or a budget's spend; gauges and
budget reservations are held per lane. A worker takes a lane when it first counts (its pid is
written in the header); a worker that died leaves its lane to its replacement, which first
clears every amount the dead one held. So a crashed worker cannot leak concurrency slots or
reservations.

The lock is a POSIX semaphore that records its holder's pid. A worker that waits more than
half a second for it checks that the holder is alive; if it is not (killed inside its few
microseconds of critical section), the lock is released and taken again.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import multiprocessing
import os
import time
from collections.abc import Sequence

from tollway.limits.counters import (
    BUCKET,
    BUDGET,
    GAUGE,
    CounterHealth,
    CountersFull,
    Demand,
    Outcome,
    Settlement,
    SpendHook,
)

log = logging.getLogger("tollway.limits")

_MAGIC = 0x746F6C6C77617931  # "tollway1"
_HEADER_WORDS = 8  # magic, lock holder, lanes, capacity, table-full count, spare
_WINDOW = 32
_LOCK_WAIT_S = 0.5
DEFAULT_SLOTS = 65536


def fingerprint(name: str) -> int:
    """The 64-bit fingerprint of a counter name (never 0: 0 marks a free slot)."""
    value = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    value -= 1 << 63  # signed, as the table stores it
    return value or 1


class _Pid:
    """This process's pid, kept current across forks: os.getpid() is a system call, and the
    table asks for it on every count (to hold the lock and to find its lane)."""

    value = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.value = os.getpid()


os.register_at_fork(after_in_child=_Pid.refresh)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedCounters:
    """The single-node counter store (see the module's docstring). Create it before forking."""

    def __init__(self, lanes: int = 4, slots: int = DEFAULT_SLOTS) -> None:
        if slots < _WINDOW or slots & (slots - 1):
            raise ValueError("the counter table's slot count must be a power of two >= 32")
        self.lanes = max(1, lanes)
        self.slots = slots
        self._width = 4 + self.lanes
        self._lane_base = _HEADER_WORDS
        self._table = _HEADER_WORDS + self.lanes
        words = self._table + slots * self._width
        self._memory = mmap.mmap(-1, words * 8)
        self._q = memoryview(self._memory).cast("q")
        self._d = memoryview(self._memory).cast("d")
        self._q[0] = _MAGIC
        self._q[2] = self.lanes
        self._q[3] = slots
        self._lock = multiprocessing.get_context("fork").Lock()
        # The lock's own methods, bound once: admit and settle take the lock on every call.
        self._try_lock = self._lock.acquire
        self._unlock = self._lock.release
        # Per process: the lane taken, and where each counter was last found.
        self._pid = 0
        self._lane = 0
        self._where: dict[str, tuple[int, int]] = {}

    @classmethod
    def for_workers(cls, workers: int, slots: int = DEFAULT_SLOTS) -> SharedCounters:
        """Room for every worker and its replacements."""
        return cls(lanes=min(256, 2 * max(1, workers) + 2), slots=slots)

    # -- the lock and the lanes --------------------------------------------------------

    def _acquire(self) -> None:
        q = self._q
        while not self._lock.acquire(True, _LOCK_WAIT_S):
            holder = q[1]
            if holder and not _alive(holder):
                log.error(
                    "the counter lock's holder (pid %d) died holding it; taking it over", holder
                )
                q[1] = 0
                self._lock.release()
        q[1] = _Pid.value

    def _release(self) -> None:
        self._q[1] = 0
        self._lock.release()

    def _take_lane(self) -> None:
        """Called under the lock by a process's first count."""
        pid = _Pid.value
        q = self._q
        base = self._lane_base
        owners = [q[base + i] for i in range(self.lanes)]
        choice = -1
        if pid in owners:
            choice = owners.index(pid)
        else:
            dead = [i for i, p in enumerate(owners) if p and not _alive(p)]
            free = [i for i, p in enumerate(owners) if not p]
            if dead:
                choice = dead[0]
                self._clear_lane(choice)
                log.warning(
                    "worker %d takes the counter lane of worker %d, which died; what it held "
                    "is released",
                    pid,
                    owners[choice],
                )
            elif free:
                choice = free[0]
        if choice < 0:
            raise CountersFull(f"no counter lane left for worker {pid} ({self.lanes} lanes)")
        q[base + choice] = pid
        self._pid = pid
        self._lane = choice
        self._where.clear()

    def _clear_lane(self, lane: int) -> None:
        d = self._d
        offset = 4 + lane
        for slot in range(self.slots):
            at = self._table + slot * self._width + offset
            if d[at]:
                d[at] = 0.0

    # -- slots ---------------------------------------------------------------------------

    def _held(self, at: int) -> float:
        start = at + 4
        return sum(self._d[start : start + self.lanes])

    def _slot(self, name: str, now: float) -> int:
        """The first word of `name`'s slot, made if needed (under the lock)."""
        q = self._q
        known = self._where.get(name)
        if known is not None:
            at, fp = known
            if q[at] == fp:
                return at
        else:
            fp = fingerprint(name)
        mask = self.slots - 1
        home = fp & mask
        width = self._width
        table = self._table
        reuse = -1
        for step in range(_WINDOW):
            at = table + ((home + step) & mask) * width
            found = q[at]
            if found == fp:
                self._remember(name, at, fp)
                return at
            if found == 0:
                if reuse < 0:
                    reuse = at
                break
            if reuse < 0 and self._lapsed(at, now):
                reuse = at
        if reuse < 0:
            q[4] += 1
            raise CountersFull(f"no room in the counter table ({self.slots} slots) for {name}")
        d = self._d
        for word in range(1, width):
            d[reuse + word] = 0.0
        q[reuse] = fp
        self._remember(name, reuse, fp)
        return reuse

    def _remember(self, name: str, at: int, fp: int) -> None:
        if len(self._where) > 4 * self.slots:
            self._where.clear()
        self._where[name] = (at, fp)

    def _lapsed(self, at: int, now: float) -> bool:
        return self._d[at + 1] < now and self._held(at) == 0.0

    # -- the store's operations -------------------------------------------------------

    def admit(self, demands: Sequence[Demand]) -> Outcome:
        # On every call's path: the lock taken without a timeout when it is free (the common
        # case: no deadline to compute), slots found and held amounts summed inline, and no
        # tuple unpacking of what a branch does not read.
        now = time.time()
        d = self._d
        q = self._q
        if self._try_lock(False):
            q[1] = _Pid.value
        else:
            self._acquire()
        try:
            if self._pid != _Pid.value:
                self._take_lane()
            # Each counter's slot, before any check (a full table refuses the call whatever
            # its counters hold): where it was last found when that slot still holds it (the
            # common case), else found or made.
            where = self._where
            slots: list[int] = []
            for demand in demands:
                known = where.get(demand[1])
                if known is not None and q[known[0]] == known[1]:
                    slots.append(known[0])
                else:
                    slots.append(self._slot(demand[1], now))
            lanes = self.lanes
            used: list[float] = []
            for i, demand in enumerate(demands):
                at = slots[i]
                kind = demand[0]
                if kind == BUCKET:
                    rate = demand[4]
                    level = d[at + 2] - (now - d[at + 3]) * rate
                    if level < 0.0:
                        level = 0.0
                    # A demand larger than the bucket passes when the bucket is empty, and
                    # leaves the bucket in debt.
                    amount = demand[2]
                    limit = demand[3]
                    need = amount if amount < limit else limit
                    if level + need > limit:
                        wait = (level + need - limit) / rate if rate > 0 else 0.0
                        used.append(level)
                        return Outcome(False, i, used, wait)
                    used.append(level)
                elif kind == GAUGE:
                    held = sum(d[at + 4 : at + 4 + lanes])
                    if held + demand[2] > demand[3]:
                        return Outcome(False, i, used, 1.0)
                    used.append(held)
                else:
                    taken = d[at + 2] + sum(d[at + 4 : at + 4 + lanes])
                    if taken >= demand[3]:
                        return Outcome(False, i, used, max(1.0, demand[5] - now))
                    used.append(taken)
            lane = 4 + self._lane
            for i, demand in enumerate(demands):
                at = slots[i]
                kind = demand[0]
                amount = demand[2]
                if kind == BUCKET:
                    rate = demand[4]
                    level = used[i] + amount
                    d[at + 2] = level
                    d[at + 3] = now
                    d[at + 1] = now + level / rate if rate > 0 else now
                elif kind == GAUGE:
                    d[at + lane] += amount
                else:
                    d[at + lane] += amount
                    d[at + 1] = demand[5]
                used[i] += amount
            return Outcome(True, -1, used)
        finally:
            q[1] = 0
            self._unlock()

    def settle(
        self,
        items: Sequence[Settlement],
        on_spend: SpendHook | None = None,
        fallback: bool = False,
    ) -> None:
        now = time.time()
        d = self._d
        q = self._q
        spends: list[tuple[str, float, float]] = []
        if self._try_lock(False):
            q[1] = _Pid.value
        else:
            self._acquire()
        try:
            if self._pid != _Pid.value:
                self._take_lane()
            lane = 4 + self._lane
            where = self._where  # each counter's slot, as in admit
            slots: list[int] = []
            for item in items:
                known = where.get(item[1])
                if known is not None and q[known[0]] == known[1]:
                    slots.append(known[0])
                else:
                    slots.append(self._slot(item[1], now))
            for i, item in enumerate(items):
                at = slots[i]
                kind = item[0]
                if kind == BUCKET:
                    rate = item[4]
                    level = d[at + 2] - (now - d[at + 3]) * rate
                    level = max(0.0, level) - item[2]
                    if level < 0.0:
                        level = 0.0
                    d[at + 2] = level
                    d[at + 3] = now
                    d[at + 1] = now + level / rate if rate > 0 else now
                else:
                    held = d[at + lane] - item[2]
                    d[at + lane] = held if held > 0.0 else 0.0
                    if kind == BUDGET:
                        spend = item[3]
                        before = d[at + 2]
                        d[at + 2] = before + spend
                        if item[5] > d[at + 1]:
                            d[at + 1] = item[5]
                        spends.append((item[1], before, before + spend))
        finally:
            q[1] = 0
            self._unlock()
        if on_spend is not None:
            for name, before, after in spends:
                on_spend(name, before, after)

    def seed_spend(self, name: str, spent: float, until: float) -> None:
        now = time.time()
        self._acquire()
        try:
            fresh = self._where.get(name) is None and not self._exists(name)
            at = self._slot(name, now)
            if fresh:
                self._d[at + 2] = spent
                self._d[at + 1] = until
        finally:
            self._release()

    def _exists(self, name: str) -> bool:
        fp = fingerprint(name)
        mask = self.slots - 1
        for step in range(_WINDOW):
            found = self._q[self._table + ((fp + step) & mask) * self._width]
            if found == fp:
                return True
            if found == 0:
                return False
        return False

    def peek(self, name: str) -> tuple[float, float]:
        """(a, held) of a counter, 0s when it does not exist: for tests and the metrics."""
        now = time.time()
        self._acquire()
        try:
            if not self._exists(name):
                return 0.0, 0.0
            at = self._slot(name, now)
            return self._d[at + 2], self._held(at)
        finally:
            self._release()

    def health(self) -> CounterHealth:
        return CounterHealth("local", table_full=int(self._q[4]))
