from __future__ import annotations

from typing import Any

from tollway.config.snapshot import Deployment, ModelRoute
from tollway.proxy.balancer import Balancers


def _route(name: str, count: int) -> ModelRoute:
    provider: Any = object()
    return ModelRoute(name, tuple(Deployment(provider, f"{name}-{i}") for i in range(count)))


def test_round_robin_takes_turns_per_route() -> None:
    balancers = Balancers()
    a, b = _route("a", 3), _route("b", 2)
    picked = [balancers.pick(a).model for _ in range(4)] + [balancers.pick(b).model]
    assert picked == ["a-0", "a-1", "a-2", "a-0", "b-0"]
    assert balancers.pick(a).model == "a-1"


def test_a_new_snapshot_of_the_same_route_keeps_its_turn() -> None:
    balancers = Balancers()
    assert balancers.pick(_route("m", 2)).model == "m-0"
    # Swapping the snapshot builds new route objects; the position is the route's, by name.
    assert balancers.pick(_route("m", 2)).model == "m-1"


def test_a_single_deployment_and_the_attempt_plan() -> None:
    balancers = Balancers()
    only = _route("only", 1)
    assert balancers.pick(only).model == "only-0"
    assert [d.model for d in balancers.attempts(_route("two", 2))] == ["two-0"]
