"""$TOLLWAY_REDIS_WAIT_MS: how long a call waits on Redis before the fallback decides it."""

from __future__ import annotations

import pytest

from tollway.limits.boot import NodeCounters
from tollway.settings import ServeSettings, counters_redis_wait_s


def test_the_wait_is_50_ms_unless_set() -> None:
    assert counters_redis_wait_s(ServeSettings(environ={})) == 0.05
    assert counters_redis_wait_s(ServeSettings(environ={"TOLLWAY_REDIS_WAIT_MS": "250"})) == 0.25


@pytest.mark.parametrize("given", ["0", "-5", "ten", "70000"])
def test_a_wait_that_is_not_a_positive_number_of_ms_stops_the_start(given: str) -> None:
    with pytest.raises(ValueError):
        counters_redis_wait_s(ServeSettings(environ={"TOLLWAY_REDIS_WAIT_MS": given}))


def test_each_worker_s_redis_connection_waits_that_long() -> None:
    counters = NodeCounters(1, "redis://127.0.0.1:9/0", wait_s=0.4)
    assert counters.for_this_process().timeout_s == 0.4  # type: ignore[attr-defined]
