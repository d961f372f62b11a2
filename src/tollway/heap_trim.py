"""Giving a worker's freed heap back to the system after a burst.

glibc's malloc hands memory back to the system only from the top of its heap. A burst of large
bodies (64 connections sending 50 KB prompts) leaves about 14 MB of free chunks below chunks
still in use, and the worker's resident memory keeps them for good: it reads as the high-water
mark of the busiest second, not as what the worker holds. `malloc_trim(0)` releases every free
page wherever it lies in the heap (about 1 ms on this worker's heap), so the worker trims on a
timer, on its own loop. Where the C library has no `malloc_trim` (musl), nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_EVERY_S = 10.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Trims the heap every `every_s` seconds while started."""

    def __init__(self, every_s: float = TRIM_EVERY_S) -> None:
        self.every_s = every_s
        self.trims = 0
        self._trim = _malloc_trim()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def available(self) -> bool:
        return self._trim is not None

    def start(self) -> None:
        if self._trim is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.every_s, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def trim(self) -> None:
        if self._trim is not None:
            self._trim(0)
            self.trims += 1

    def _tick(self) -> None:
        self.trim()
        self._timer = asyncio.get_running_loop().call_later(self.every_s, self._tick)
