"""Delivering events to webhooks: POSTed as JSON, signed, retried, off the hot path.

The recorder stores each event with one delivery per webhook that takes its kind (the
webhook's team's events, or every event for a platform webhook). A thread of the recorder
sends due deliveries: it claims a few at a time (moving their next attempt a minute ahead, so
that another node's recorder leaves them alone), POSTs each, and marks it delivered on a 2xx
answer, or schedules the next attempt (10 s, 20 s, 40 s, ... up to an hour; 8 attempts).

Each request carries `x-tollway-event` (the kind), `x-tollway-delivery` (its id, the same on
every attempt), and with a secret, `x-tollway-signature: sha256=<hex>`: the HMAC-SHA256 of
`<x-tollway-timestamp>.<body>` with the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tollway import __version__
from tollway.store.database import Store
from tollway.store.engine import WRITE
from tollway.store.metering_schema import Event, Webhook, WebhookDelivery

log = logging.getLogger("tollway.analytics")

MAX_ATTEMPTS = 8
_CLAIM = timedelta(seconds=60)
_BATCH = 20
_TIMEOUT_S = 5.0


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt."""
    return timedelta(seconds=min(3600.0, 10.0 * 2 ** (attempts - 1)))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Due:
    delivery_id: int
    attempts: int
    url: str
    secret: str | None
    kind: str
    body: bytes


class WebhookSender:
    """The recorder's delivery thread."""

    def __init__(
        self,
        store: Callable[[], Store | None],
        on_result: Callable[[bool], None] = lambda ok: None,
        interval_s: float = 1.0,
    ) -> None:
        self._store = store
        self._on_result = on_result
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(
            timeout=_TIMEOUT_S,
            follow_redirects=False,
            headers={"user-agent": f"tollway/{__version__}"},
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tollway-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_TIMEOUT_S + 1)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            store = self._store()
            if store is None:
                continue
            try:
                self.send_due(store)
            except Exception as exc:  # the store is away: the next round tries again
                text = str(getattr(exc, "orig", None) or exc).strip()
                log.warning("webhook deliveries paused: %s", text.splitlines()[0] if text else exc)

    def send_due(self, store: Store) -> int:
        """Sends the deliveries that are due; returns how many were tried."""
        due = self._claim(store)
        for item in due:
            ok, status, error = self._post(item)
            self._on_result(ok)
            self._settle(store, item, ok, status, error)
        return len(due)

    def _claim(self, store: Store) -> list[_Due]:
        now = datetime.now(UTC)
        engine = store.engine.execution_options(**{WRITE: True})
        out: list[_Due] = []
        with Session(engine) as session, session.begin():
            query = (
                select(WebhookDelivery, Webhook, Event)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.delivered_at.is_(None),
                    WebhookDelivery.next_at.is_not(None),
                    WebhookDelivery.next_at <= now,
                    Webhook.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_at)
                .limit(_BATCH)
            )
            if store.backend == "postgresql":
                query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
            for delivery, hook, event in session.execute(query):
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery.id)
                    .values(next_at=now + _CLAIM)
                )
                body = orjson.dumps(
                    {
                        "id": event.event_id,
                        "kind": event.kind,
                        "at": event.at.isoformat(),
                        "team_id": event.team_id or None,
                        "app_id": event.app_id or None,
                        "key_id": event.key_id or None,
                        "payload": event.payload,
                    }
                )
                secret = None
                if hook.sealed_secret is not None:
                    secret = store.unseal(hook.sealed_secret).get("secret")
                out.append(_Due(delivery.id, delivery.attempts, hook.url, secret, event.kind, body))
        return out

    def _post(self, item: _Due) -> tuple[bool, int | None, str]:
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-tollway-event": item.kind,
            "x-tollway-delivery": str(item.delivery_id),
            "x-tollway-timestamp": timestamp,
        }
        if item.secret:
            headers["x-tollway-signature"] = signature(item.secret, timestamp, item.body)
        try:
            response = self._client.post(item.url, content=item.body, headers=headers)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return True, response.status_code, ""
        return False, response.status_code, f"answered {response.status_code}"

    def _settle(self, store: Store, item: _Due, ok: bool, status: int | None, error: str) -> None:
        now = datetime.now(UTC)
        attempts = item.attempts + 1
        values: dict[str, object] = {"attempts": attempts, "status_code": status}
        if ok:
            values.update(delivered_at=now, next_at=None, last_error="")
        else:
            values["last_error"] = error
            values["next_at"] = now + backoff(attempts) if attempts < MAX_ATTEMPTS else None
            log.warning(
                "webhook delivery %d (%s) failed (attempt %d): %s",
                item.delivery_id,
                item.kind,
                attempts,
                error,
            )
        engine = store.engine.execution_options(**{WRITE: True})
        with engine.begin() as conn:
            conn.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == item.delivery_id)
                .values(**values)
            )
