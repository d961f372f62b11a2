"""REST target pools: which version and which target a call goes to, and what a worker knows of
each target. Per-worker state beside the snapshot, as proxy/balancer.py is for models.

The snapshot says which targets a service version has and how they share calls
(`RestBackend`); what changes per call lives here: round-robin positions and weighted credits
(by version), calls in flight, consecutive failures, ejections and probe results (by service
and target URL, so that publishing a version with the same targets keeps what is known of
them). One worker runs one event loop thread: no lock is needed.

Strategies (among the targets that are available: not ejected, not failing their probes;
when none is, among all of them, rather than refuse the call):
- `round_robin`: each in turn, weights ignored;
- `weighted`: smooth weighted round-robin (3:1 is a, a, b, a: spread out, exact);
- `least_connections`: fewest calls in flight relative to weight, ties taken in turn;
- `consistent_hash`: rendezvous hashing of a header, the client address or the path
  (proxy/consistent_hash.py).

Passive health: `passive.failures` failed calls in a row eject a target for `eject_s`; when
it comes back it is on probation: one more failure ejects it again for twice as long (up to
`max_eject_s`), one success clears its record. Active probes (proxy/health_checks.py) mark a
target down after `unhealthy_threshold` failed probes and up after `healthy_threshold` passed
ones, which also ends a passive ejection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from tollway.config.rest_service import RestBackend, RestService, RestTarget
from tollway.config.transport import Origin, UpstreamTimeouts
from tollway.policies.context import IncomingRequest
from tollway.proxy import consistent_hash
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.upstream import UpstreamError, UpstreamPool

log = logging.getLogger("tollway.proxy")

# The request header that asks for one of a service's serving versions by number.
VERSION_HEADER = b"x-tollway-version"


class TargetState:
    """What one worker knows of one target of one service."""

    __slots__ = (
        "ejected_until",
        "ejections",
        "failures",
        "healthy",
        "in_flight",
        "probe_failures",
        "probe_passes",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        # Passive: failed calls in a row; ejected until (monotonic); ejections in a row.
        self.failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        # Active: the probes' verdict, and the passes or failures in a row behind it.
        self.healthy = True
        self.probe_passes = 0
        self.probe_failures = 0

    def available(self, now: float) -> bool:
        return self.healthy and self.ejected_until <= now


class _Balance:
    """One version's round-robin position and weighted credits."""

    __slots__ = ("credits", "position")

    def __init__(self) -> None:
        self.position = 0
        self.credits: dict[str, int] = {}


_PoolSettings = tuple[Origin, UpstreamTimeouts, int, str | None, bool]


class TargetPools:
    __slots__ = ("_balances", "_pools", "_split", "_states", "deadlines")

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines
        self._states: dict[tuple[int, str], TargetState] = {}
        self._balances: dict[str, _Balance] = {}
        # Canary credits by service id (smooth weighted split between two versions).
        self._split: dict[int, int] = {}
        self._pools: dict[_PoolSettings, UpstreamPool] = {}

    # -- versions ------------------------------------------------------------------------

    def backend(self, rest: RestService, service_id: int, request: IncomingRequest) -> RestBackend:
        """The version a call goes to: the one it asks for by number (`x-tollway-version`)
        if that one serves, else the canary for its weight's share of calls, spread out."""
        canary = rest.canary
        if canary is None:
            return rest.primary
        asked = request.header(VERSION_HEADER)
        if asked is not None and asked.isdigit():
            pinned = rest.version(int(asked))
            if pinned is not None:
                return pinned
        weight = rest.canary_weight
        if weight <= 0:
            return rest.primary
        if weight >= 100:
            return canary
        credit = self._split.get(service_id, 0) + weight
        if credit >= 50:
            self._split[service_id] = credit - 100
            return canary
        self._split[service_id] = credit
        return rest.primary

    # -- targets -------------------------------------------------------------------------

    def state(self, backend: RestBackend, target: RestTarget) -> TargetState:
        key = (backend.service_id, target.url)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = TargetState()
        return state

    def pick(
        self, backend: RestBackend, request: IncomingRequest, tried: Iterable[str] = ()
    ) -> RestTarget | None:
        """The target for the next try of a call: one of the version's targets not `tried`
        (by name), available ones first; None when every target has been tried."""
        targets = backend.targets
        excluded = set(tried)
        now = time.monotonic()
        untried = [t for t in targets if t.name not in excluded]
        if not untried:
            return None
        candidates = [t for t in untried if self.state(backend, t).available(now)] or untried
        if len(candidates) == 1 and backend.strategy != "consistent_hash":
            return candidates[0]
        strategy = backend.strategy
        if strategy == "consistent_hash":
            return consistent_hash.choose(_hash_key(backend, request), candidates)
        balance = self._balances.get(backend.key)
        if balance is None:
            balance = self._balances[backend.key] = _Balance()
        if strategy == "weighted":
            return _smooth_weighted(balance, candidates)
        if strategy == "least_connections":
            return self._least_connections(backend, balance, candidates)
        return _round_robin(balance, targets, candidates)

    def _least_connections(
        self, backend: RestBackend, balance: _Balance, candidates: list[RestTarget]
    ) -> RestTarget:
        # Ties go in turn, so that an idle pool spreads its calls rather than piling them on
        # its first target.
        start = balance.position % len(candidates)
        balance.position += 1
        best = candidates[start]
        best_load = self.state(backend, best).in_flight / best.weight
        for i in range(1, len(candidates)):
            target = candidates[(start + i) % len(candidates)]
            load = self.state(backend, target).in_flight / target.weight
            if load < best_load:
                best, best_load = target, load
        return best

    # -- outcomes ------------------------------------------------------------------------

    def succeeded(self, backend: RestBackend, target: RestTarget) -> None:
        state = self.state(backend, target)
        state.failures = 0
        if state.ejections and state.ejected_until <= time.monotonic():
            # Back from an ejection and serving: its record is clean again.
            state.ejections = 0

    def failed(self, backend: RestBackend, target: RestTarget, why: str) -> None:
        """A call failed on `target` (no answer, or an answer passive checks count)."""
        passive = backend.passive_check
        if passive.failures <= 0:
            return
        state = self.state(backend, target)
        now = time.monotonic()
        if state.ejected_until > now:
            return
        state.failures += 1
        on_probation = state.ejections > 0
        if state.failures < passive.failures and not on_probation:
            return
        state.ejections += 1
        eject_s = min(passive.eject_s * 2 ** (state.ejections - 1), passive.max_eject_s)
        state.ejected_until = now + eject_s
        state.failures = 0
        state.probe_passes = 0
        log.warning(
            "REST target %s of service %d ejected for %g s: %s",
            target.url,
            backend.service_id,
            eject_s,
            why if on_probation else f"{passive.failures} failures in a row, the last: {why}",
        )

    def probed(self, backend: RestBackend, target: RestTarget, passed: bool, why: str) -> None:
        """An active probe's result (proxy/health_checks.py)."""
        check = backend.active_check
        if check is None:
            return
        state = self.state(backend, target)
        if passed:
            state.probe_failures = 0
            state.probe_passes += 1
            out = not state.healthy or state.ejected_until > time.monotonic()
            if out and state.probe_passes >= check.healthy_threshold:
                state.healthy = True
                state.ejected_until = 0.0
                state.ejections = 0
                state.failures = 0
                log.warning(
                    "REST target %s of service %d is back: %d probes passed",
                    target.url,
                    backend.service_id,
                    state.probe_passes,
                )
            return
        state.probe_passes = 0
        state.probe_failures += 1
        if state.healthy and state.probe_failures >= check.unhealthy_threshold:
            state.healthy = False
            log.warning(
                "REST target %s of service %d is down: %d probes failed, the last: %s",
                target.url,
                backend.service_id,
                state.probe_failures,
                why,
            )

    # -- connections ---------------------------------------------------------------------

    def upstream_pool(self, target: RestTarget) -> UpstreamPool:
        """The target's keep-alive connections (shared by targets with the same settings)."""
        settings = (
            target.origin,
            target.timeouts,
            target.max_idle,
            target.ca_file,
            target.tls_verify,
        )
        pool = self._pools.get(settings)
        if pool is None:
            try:
                pool = UpstreamPool(
                    target.origin,
                    target.timeouts,
                    self.deadlines,
                    target.max_idle,
                    target.ca_file,
                    target.tls_verify,
                )
            except OSError as exc:  # ssl.SSLError is one: an unreadable or invalid CA file
                raise UpstreamError(
                    "connect", f"cannot use the CA file {target.ca_file}: {exc}"
                ) from None
            self._pools[settings] = pool
        return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


def _hash_key(backend: RestBackend, request: IncomingRequest) -> bytes:
    on = backend.hash_on
    if on == "path":
        return request.path.encode("latin-1")
    if on == "header" and backend.hash_header is not None:
        value = request.header(backend.hash_header)
        if value is not None:
            return value
    return request.client_address.encode()


def _round_robin(
    balance: _Balance, targets: tuple[RestTarget, ...], candidates: list[RestTarget]
) -> RestTarget:
    """The next candidate after the last one picked, in the pool's order."""
    allowed = {t.name for t in candidates}
    count = len(targets)
    for step in range(count):
        index = (balance.position + step) % count
        if targets[index].name in allowed:
            balance.position = index + 1
            return targets[index]
    return candidates[0]


def _smooth_weighted(balance: _Balance, candidates: list[RestTarget]) -> RestTarget:
    """Smooth weighted round-robin: each candidate gains its weight in credit, the richest is
    picked and pays the total (nginx's algorithm)."""
    credits = balance.credits
    total = 0
    best = candidates[0]
    best_credit = None
    for target in candidates:
        credit = credits.get(target.name, 0) + target.weight
        credits[target.name] = credit
        total += target.weight
        if best_credit is None or credit > best_credit:
            best, best_credit = target, credit
    credits[best.name] = credits[best.name] - total
    return best
