"""Events to webhooks: stored once with their team, delivered signed to the webhooks that
take their kind, retried with back-off when the receiver fails."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update

from tollway.analytics import wire
from tollway.analytics.storage import RecordWriter
from tollway.analytics.webhooks import WebhookSender, backoff
from tollway.store import SYSTEM, Store, apps, recording, teams
from tollway.store.metering_schema import Event, WebhookDelivery


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def test_events_reach_their_teams_webhooks_signed_and_retried(
    store: Store, receiver: Receiver
) -> None:
    with store.write(SYSTEM) as tx:
        ml = teams.create(tx, "ml")
        other = teams.create(tx, "other")
        bot = apps.create(tx, ml, "bot")
        recording.create_webhook(
            tx, team_id=ml.id, name="ml", url=receiver.url, kinds=["budget*"], secret="s" * 20
        )
        recording.create_webhook(
            tx, team_id=other.id, name="other", url=receiver.url, kinds=["*"], secret=None
        )
        recording.create_webhook(
            tx, team_id=ml.id, name="wrong kind", url=receiver.url, kinds=["quota*"], secret=None
        )
        app_id = bot.id
    now = datetime.now(UTC).timestamp()
    # Reported for an app only: stored as its team's.
    event = wire.Event("ev-1", now, "budget.alert", {"spent_usd": 8.5}, 0, app_id, 0)
    writer = RecordWriter(store)
    assert writer.write([], [event, event]).events == 1
    with store.read() as session:
        stored = session.scalars(select(Event)).one()
        assert stored.team_id == ml.id
        deliveries = session.scalars(select(WebhookDelivery)).all()
    assert len(deliveries) == 1

    results: list[bool] = []
    sender = WebhookSender(lambda: store, results.append)
    receiver.status = 500
    assert sender.send_due(store) == 1
    assert results == [False]
    with store.read() as session:
        failed = session.scalars(select(WebhookDelivery)).one()
    assert failed.attempts == 1 and failed.delivered_at is None and "500" in failed.last_error
    assert failed.next_at is not None
    assert sender.send_due(store) == 0  # not due yet: 10 s later
    assert backoff(1) == timedelta(seconds=10) and backoff(20) == timedelta(hours=1)
    with store.write(SYSTEM) as tx:
        tx.session.execute(update(WebhookDelivery).values(next_at=datetime.now(UTC)))
    receiver.status = 204
    assert sender.send_due(store) == 1
    sender.stop()
    assert results == [False, True]
    headers, body = receiver.received[-1]
    assert headers["x-tollway-event"] == "budget.alert"
    expected = hmac.new(
        b"s" * 20, headers["x-tollway-timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["x-tollway-signature"] == "sha256=" + expected
    sent = json.loads(body)
    assert (
        sent["id"] == "ev-1" and sent["team_id"] == ml.id and sent["payload"] == {"spent_usd": 8.5}
    )
    with store.read() as session:
        done = session.scalars(select(WebhookDelivery)).one()
    assert done.delivered_at is not None and done.attempts == 2
