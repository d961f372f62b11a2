"""Choosing the deployments a call tries, in order: per-worker state beside the snapshot.

The snapshot says which deployments a model has; what changes per request (the round-robin
position, and as routing grows in-flight counts, latencies and breaker states) lives here,
keyed by route name, so that a new snapshot keeps it for the routes it still has. One worker
runs one event loop thread: no lock is needed.
"""

from __future__ import annotations

from tollway.config.snapshot import Deployment, ModelRoute


class Balancers:
    __slots__ = ("_positions",)

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}

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
