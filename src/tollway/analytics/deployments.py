"""Model deployments' health across a node's workers: each worker reports its own circuit
breakers and load every second (proxy/balancer.py learns from its own traffic), and the
recorder keeps the latest report of each worker to say, per deployment, how many workers have
its breaker closed, open or half-open. Read by /metrics and by the admin API's
/admin/v1/deployments (docs/routing.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tollway.analytics.wire import DeploymentRow

BREAKER_STATES = ("closed", "open", "half_open")


@dataclass(slots=True)
class DeploymentHealth:
    """One deployment, over the workers that reported it."""

    model: str
    deployment: str
    breakers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BREAKER_STATES, 0))
    in_flight: int = 0
    consecutive_failures: int = 0  # the most of any worker
    open_for_s: float = 0.0  # the longest of any worker
    # Latency averages of the workers that measured it, averaged.
    latencies: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        measured = self.latencies
        return {
            "model": self.model,
            "deployment": self.deployment,
            "state": self.state,
            "workers": dict(self.breakers),
            "in_flight": self.in_flight,
            "consecutive_failures": self.consecutive_failures,
            "open_for_s": self.open_for_s,
            "latency_s": round(sum(measured) / len(measured), 6) if measured else None,
        }

    @property
    def state(self) -> str:
        """Open when every reporting worker has it open, half_open or open when some do."""
        counts = self.breakers
        if counts["open"] and not counts["closed"] and not counts["half_open"]:
            return "open"
        if counts["open"] or counts["half_open"]:
            return "degraded"
        return "closed"


def combine(reports: Sequence[Sequence[DeploymentRow]]) -> list[DeploymentHealth]:
    """The workers' rows, one entry per (model, deployment), in model and label order."""
    found: dict[tuple[str, str], DeploymentHealth] = {}
    for rows in reports:
        for model, label, state, consecutive, in_flight, latency, open_for in rows:
            entry = found.get((model, label))
            if entry is None:
                entry = found[(model, label)] = DeploymentHealth(model, label)
            if state in entry.breakers:
                entry.breakers[state] += 1
            entry.in_flight += in_flight
            entry.consecutive_failures = max(entry.consecutive_failures, consecutive)
            entry.open_for_s = max(entry.open_for_s, open_for)
            if latency:
                entry.latencies.append(latency)
    return [found[key] for key in sorted(found)]


def render(
    out: list[str],
    entries: Sequence[DeploymentHealth],
    family: Callable[[list[str], str, str, str, tuple[str, ...], dict[Any, Any]], None],
) -> None:
    """The deployment families of the text exposition format."""
    states: dict[tuple[str, ...], int] = {}
    in_flight: dict[tuple[str, ...], int] = {}
    for entry in entries:
        for state, count in entry.breakers.items():
            states[(entry.model, entry.deployment, state)] = count
        in_flight[(entry.model, entry.deployment)] = entry.in_flight
    family(
        out,
        "tollway_deployment_breakers",
        "gauge",
        "Workers whose circuit breaker for a model deployment is in each state "
        "(closed, open, half_open).",
        ("model", "deployment", "state"),
        states,
    )
    family(
        out,
        "tollway_deployment_in_flight",
        "gauge",
        "Calls in progress on a model deployment, over the reporting workers.",
        ("model", "deployment"),
        in_flight,
    )
