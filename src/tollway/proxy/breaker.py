"""A circuit breaker per deployment, and what it remembers between calls.

Closed: calls go through; it opens after `consecutive_failures` failures in a row, or when at
least `min_calls` calls in the last `window_s` failed at `error_rate` or more. Open: the
deployment gets no calls for `cooldown_s` (doubling, up to `max_cooldown_s`, each time a probe
fails). Half-open: one call at a time is let through as a probe; its success closes the
breaker, its failure opens it again. A deployment whose upstream answered 429 with
Retry-After is also held back until then, without counting as a failure of the deployment.

Per worker and in memory, like the balancer's other state: each worker learns on its own
traffic, so a dead deployment is ejected after a few failures in every worker.
"""

from __future__ import annotations

from tollway.config.snapshot import BreakerSettings

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class Breaker:
    __slots__ = (
        "_cooldown",
        "_failures",
        "_opened_at",
        "_probing",
        "_window",
        "consecutive",
        "held_until",
        "settings",
        "state",
    )

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self.state = CLOSED
        self.consecutive = 0
        # Calls and failures in the current window: [window start, calls, failures].
        self._window = [0.0, 0, 0]
        self._opened_at = 0.0
        self._cooldown = settings.cooldown_s
        self._probing = False
        self._failures = 0
        # Not before this time (a Retry-After), whatever the state.
        self.held_until = 0.0

    def allows(self, now: float) -> bool:
        """Whether a call may go to the deployment now (a half-open probe counts as one)."""
        if now < self.held_until:
            return False
        if self.state == CLOSED:
            return True
        if self.state == OPEN and now - self._opened_at >= self._cooldown:
            self.state = HALF_OPEN
            self._probing = False
        return self.state == HALF_OPEN and not self._probing

    def started(self) -> None:
        if self.state == HALF_OPEN:
            self._probing = True

    def succeeded(self, now: float) -> None:
        self.consecutive = 0
        self._count(now, failed=False)
        if self.state != CLOSED:
            self.state = CLOSED
            self._probing = False
            self._cooldown = self.settings.cooldown_s

    def failed(self, now: float) -> None:
        self.consecutive += 1
        calls, failures = self._count(now, failed=True)
        settings = self.settings
        if self.state == HALF_OPEN:
            self._open(now, longer=True)
        elif self.state == CLOSED and (
            self.consecutive >= settings.consecutive_failures
            or (calls >= settings.min_calls and failures / calls >= settings.error_rate)
        ):
            self._open(now, longer=False)

    def released(self) -> None:
        """A call ended neither well nor badly (the upstream was busy): a half-open probe's
        place is free again."""
        if self.state == HALF_OPEN:
            self._probing = False

    def hold(self, until: float) -> None:
        """Keep calls away until `until` (the upstream's Retry-After), failure or not."""
        self.held_until = max(self.held_until, until)

    def _open(self, now: float, longer: bool) -> None:
        if longer:
            self._cooldown = min(self._cooldown * 2, self.settings.max_cooldown_s)
        self.state = OPEN
        self._opened_at = now
        self._probing = False

    def _count(self, now: float, failed: bool) -> tuple[int, int]:
        window = self._window
        if now - window[0] > self.settings.window_s:
            window[0], window[1], window[2] = now, 0, 0
        window[1] += 1
        if failed:
            window[2] += 1
        return int(window[1]), int(window[2])

    def open_for(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 unless open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self._cooldown - (now - self._opened_at))
