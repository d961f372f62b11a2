"""Choosing the deployments a call tries, in order: per-worker state beside the snapshot.

The snapshot says which deployments a model has; what changes per request (the round-robin
position, and as routing grows in-flight counts, latencies and breaker states) lives here,
keyed by route name, so that a new snapshot keeps it for the routes it still has. One worker
runs one event loop thread: no lock is needed.
"""

from __future__ import annotations

from tollway.config.snapshot import Deployment, ModelRoute, RestTarget, ServiceRuntime


class Balancers:
    __slots__ = ("_credits", "_positions")

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}
        # Smooth weighted round-robin credit per REST target, by service and target name.
        self._credits: dict[str, dict[str, int]] = {}

    def pick(self, route: ModelRoute) -> Deployment:
        """The next deployment of `route`, round-robin."""
        deployments = route.deployments
        if len(deployments) == 1:
            return deployments[0]
        position = (self._positions.get(route.name, -1) + 1) % len(deployments)
        self._positions[route.name] = position
        return deployments[position]

    def attempts(self, route: ModelRoute) -> tuple[Deployment, ...]:
        """The deployments a call tries, in order. One for now: retries and fallbacks across
        a route's deployments slot in here."""
        return (self.pick(route),)

    def pick_target(self, service: ServiceRuntime) -> RestTarget:
        """The next target of a REST service, in proportion to the targets' weights and
        spread out (smooth weighted round-robin: a target of weight 3 next to one of weight 1
        is picked a, a, b, a, not a, a, a, b)."""
        targets = service.targets
        if len(targets) == 1:
            return targets[0]
        credits = self._credits.setdefault(service.name, {})
        total = 0
        best: RestTarget | None = None
        best_credit = 0
        for target in targets:
            credit = credits.get(target.name, 0) + target.weight
            credits[target.name] = credit
            total += target.weight
            if best is None or credit > best_credit:
                best, best_credit = target, credit
        assert best is not None
        credits[best.name] = best_credit - total
        return best
