"""Budget alerts: when a settled call carries a budget's spend across one of its thresholds,
an event `budget_alert` is recorded (through the worker's event sink) and, when configured,
POSTed as JSON to a webhook.

Exactly once per threshold and period, whatever the number of workers and nodes: the counter
store reports each settlement's spend before and after it, atomically, so only the call that
crossed the line sees it crossed. Webhook deliveries leave the done phase at once: they run on
the event loop (tried 3 times, 5 s each), at most 100 waiting; past that they are dropped and
logged, never queued without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tollway.limits.refusals import Part

log = logging.getLogger("tollway.limits")

ALERT = "budget.alert"
_MAX_WAITING = 100
_TRIES = 3


class EventSink(Protocol):
    """Where workers record events: the worker's record sink (tollway.analytics.sink), which
    stores them in the events table and sends them to the webhooks that take their kind."""

    def event(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        team_id: int = 0,
        app_id: int = 0,
        key_id: int = 0,
        event_id: str | None = None,
    ) -> object: ...


class Webhook:
    """POSTs JSON to one URL, in the background."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout_s: float = 5.0) -> None:
        self.url = url
        self.headers = dict(headers)
        self.timeout_s = timeout_s
        self.waiting = 0
        self.sent = 0
        self.failed = 0

    def post(self, payload: Mapping[str, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("budget alert not sent to the webhook (no event loop): %s", payload)
            return
        if self.waiting >= _MAX_WAITING:
            self.failed += 1
            log.error("budget alert dropped: %d webhook deliveries already waiting", self.waiting)
            return
        self.waiting += 1
        task = loop.create_task(self._deliver(dict(payload)))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.waiting -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("budget webhook delivery failed", exc_info=task.exception())

    async def _deliver(self, payload: dict[str, Any]) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            for attempt in range(_TRIES):
                try:
                    response = await client.post(self.url, json=payload, headers=self.headers)
                    if response.status_code < 300:
                        self.sent += 1
                        return
                    problem = f"status {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                if attempt + 1 < _TRIES:
                    await asyncio.sleep(0.5 * 2**attempt)
        self.failed += 1
        log.error("budget webhook %s refused an alert (%s) %d times", self.url, problem, _TRIES)


class BudgetAlerts:
    def __init__(self, sink: EventSink, webhook: Webhook | None) -> None:
        self.sink = sink
        self.webhook = webhook
        self.parts: dict[str, Part] = {}

    def watch(self, prefix: str, part: Part) -> None:
        """Budget counters named `prefix<period>` are `part`'s (called as rules are matched)."""
        if len(self.parts) > 100_000:
            self.parts.clear()
        self.parts[prefix] = part

    def spent(self, name: str, before: float, after: float) -> None:
        """A settlement's report: an alert for each threshold it carried the spend across."""
        part = self.parts.get(name[: name.rfind(":") + 1])
        rule = part.budget if part is not None else None
        if part is None or rule is None:
            return
        for threshold in rule.alerts:
            line = threshold * rule.amount_usd
            if before < line <= after:
                self.alert(part, threshold, after, name)

    def alert(self, part: Part, threshold: float, spent: float, counter: str) -> None:
        rule = part.budget
        assert rule is not None
        who = part.subject
        payload = {
            "type": ALERT,
            "scope": who.scope,
            "id": who.id,
            "name": who.name,
            "threshold": threshold,
            "budget_usd": rule.amount_usd,
            "spent_usd": round(spent, 6),
            "period": rule.period,
            "period_start": counter.rsplit(":", 1)[-1],
            "at": time.time(),
        }
        ids = {"team_id": 0, "app_id": 0, "key_id": 0}
        if who.id.isdigit():
            ids[f"{who.scope}_id"] = int(who.id)
        log.warning(
            "budget alert: %s %s has spent $%.4f of $%g (%g%%) this %s",
            who.scope,
            who.name,
            spent,
            rule.amount_usd,
            threshold * 100,
            rule.period,
        )
        self.sink.event(
            ALERT, payload, team_id=ids["team_id"], app_id=ids["app_id"], key_id=ids["key_id"]
        )
        if self.webhook is not None:
            self.webhook.post(payload)
