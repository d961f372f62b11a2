"""The worker's heap trimmer (heap_trim.py): freed memory below the heap's top goes back."""

from __future__ import annotations

import asyncio

from tollway.heap_trim import HeapTrimmer


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_freed_below_a_live_block_is_given_back() -> None:
    trimmer = HeapTrimmer()
    assert trimmer.available  # glibc, as on every machine this project targets
    # 64 KB blocks come from the heap (below glibc's mmap threshold); the last one, kept,
    # holds the heap's top, so freeing the others gives nothing back by itself.
    blocks = [bytes(64 * 1024 - 64) for _ in range(400)]
    kept = blocks[-1]
    del blocks
    before = _rss_mb()
    trimmer.trim()
    after = _rss_mb()
    assert before - after > 12, (before, after)
    assert len(kept) == 64 * 1024 - 64
    assert trimmer.trims == 1


def test_it_trims_on_a_timer_until_stopped() -> None:
    async def run() -> int:
        trimmer = HeapTrimmer(every_s=0.01)
        trimmer.start()
        trimmer.start()  # a second start is no second timer
        await asyncio.sleep(0.2)
        trimmer.stop()
        stopped_at = trimmer.trims
        await asyncio.sleep(0.05)
        assert trimmer.trims == stopped_at
        return stopped_at

    assert asyncio.run(run()) >= 3
