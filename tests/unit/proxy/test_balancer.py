from __future__ import annotations

import pytest

from tollway.proxy.balancer import RoundRobin


def test_round_robin_takes_turns() -> None:
    balancer = RoundRobin(["a", "b", "c"])
    assert [balancer.pick() for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]


def test_single_and_empty() -> None:
    assert RoundRobin(["only"]).pick() == "only"
    with pytest.raises(ValueError):
        RoundRobin([])
