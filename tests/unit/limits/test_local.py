"""The node's shared counter table: exact across processes, all-or-nothing, leak-free."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from tollway.limits.counters import BUCKET, BUDGET, GAUGE, CountersFull
from tollway.limits.local import SharedCounters


def _hammer(store: SharedCounters, tries: int, out: multiprocessing.Queue[int]) -> None:
    admitted = 0
    for _ in range(tries):
        if store.admit([(BUCKET, "r:key:1", 1.0, 50.0, 50 / 60, 0.0)]).admitted:
            admitted += 1
    out.put(admitted)


def test_four_processes_admit_exactly_the_limit() -> None:
    store = SharedCounters.for_workers(4)
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[int] = ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(store, 200, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    total = sum(out.get(timeout=30) for _ in workers)
    for worker in workers:
        worker.join(10)
    assert total == 50


def test_a_refusal_takes_from_no_counter() -> None:
    store = SharedCounters(lanes=2, slots=64)
    assert store.admit([(GAUGE, "c", 1.0, 1.0, 0.0, 0.0)]).admitted
    outcome = store.admit([(BUCKET, "r", 1.0, 10.0, 1.0, 0.0), (GAUGE, "c", 1.0, 1.0, 0.0, 0.0)])
    assert not outcome.admitted and outcome.failed == 1
    assert store.peek("r")[0] == 0.0  # the bucket was not touched


def test_buckets_drain_and_settle() -> None:
    store = SharedCounters(lanes=1, slots=64)
    demand = (BUCKET, "t", 60.0, 100.0, 1000.0, 0.0)
    assert store.admit([demand]).admitted
    refused = store.admit([demand])
    assert not refused.admitted and 0 < refused.retry_after <= 0.03
    # 50 of the 60 reserved given back: room for another.
    store.settle([(BUCKET, "t", 50.0, 0.0, 1000.0, 0.0)])
    assert store.admit([demand]).admitted
    # A demand larger than the bucket passes only when it is empty.
    time.sleep(0.15)
    assert store.admit([(BUCKET, "t", 500.0, 100.0, 1000.0, 0.0)]).admitted


def test_budgets_reserve_then_spend_and_report_the_crossing() -> None:
    store = SharedCounters(lanes=1, slots=64)
    until = time.time() + 3600
    demand = (BUDGET, "b", 0.4, 1.0, 0.0, until)
    assert store.admit([demand]).admitted
    assert store.admit([demand]).admitted
    assert store.admit([demand]).admitted  # 0.8 reserved < 1.0: one more may start
    refused = store.admit([demand])
    assert not refused.admitted and refused.retry_after > 3000
    seen: list[tuple[str, float, float]] = []
    store.settle([(BUDGET, "b", 0.4, 0.3, 0.0, until)], lambda *a: seen.append(a))
    assert seen == [("b", 0.0, 0.3)]
    assert store.peek("b") == pytest.approx((0.3, 0.8))


def test_seeded_spend_counts_and_is_not_seeded_twice() -> None:
    store = SharedCounters(lanes=1, slots=64)
    store.seed_spend("b", 0.9, time.time() + 60)
    store.seed_spend("b", 5.0, time.time() + 60)
    assert store.peek("b") == (0.9, 0.0)
    assert store.admit([(BUDGET, "b", 0.5, 1.0, 0.0, time.time() + 60)]).admitted
    assert not store.admit([(BUDGET, "b", 0.01, 1.0, 0.0, time.time() + 60)]).admitted


def _hold_and_die(store: SharedCounters) -> None:
    store.admit([(GAUGE, "c", 2.0, 3.0, 0.0, 0.0)])
    os._exit(0)


def test_what_a_dead_worker_held_is_released_when_its_lane_is_taken() -> None:
    store = SharedCounters(lanes=1, slots=64)
    child = multiprocessing.get_context("fork").Process(target=_hold_and_die, args=(store,))
    child.start()
    child.join(10)
    # This process takes the dead one's lane, and with it clears what it held.
    assert store.admit([(GAUGE, "c", 3.0, 3.0, 0.0, 0.0)]).admitted


def test_lapsed_counters_make_room_and_a_full_table_says_so() -> None:
    store = SharedCounters(lanes=1, slots=32)
    for i in range(32):
        store.admit([(GAUGE, f"g{i}", 1.0, 5.0, 0.0, 0.0)])
    with pytest.raises(CountersFull):
        store.admit([(GAUGE, "one-more", 1.0, 5.0, 0.0, 0.0)])
    assert store.health().table_full == 1
    store.settle([(GAUGE, "g0", 1.0, 0.0, 0.0, 0.0)])
    assert store.admit([(GAUGE, "one-more", 1.0, 5.0, 0.0, 0.0)]).admitted
