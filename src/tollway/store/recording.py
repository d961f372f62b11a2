"""Metering settings kept in the store: each service's recording (bodies, redaction,
retention) and the webhooks that events are sent to. Every change runs in a write
transaction (a new config version: the workers learn a service's recording like any change)
and is audited."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tollway.store.audit import diff
from tollway.store.database import Tx
from tollway.store.errors import Invalid
from tollway.store.metering_schema import ServiceRecording, Webhook
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import Service, Team

DEFAULT_MAX_BODY = 65536
MAX_BODY = 1 << 20


def recording_of(session: Session, service_id: int) -> ServiceRecording | None:
    return session.get(ServiceRecording, service_id)


def _recording_snapshot(row: ServiceRecording | None) -> dict[str, Any]:
    if row is None:
        return {"bodies": False, "max_body_bytes": DEFAULT_MAX_BODY, "retention_days": None}
    return {
        "bodies": row.bodies,
        "max_body_bytes": row.max_body_bytes,
        "retention_days": row.retention_days,
        "redact": list(row.redact),
    }


def check_patterns(patterns: Sequence[str], field: str = "redact") -> None:
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise Invalid.one(f"{field}[{i}]", f"not a regular expression: {exc}") from None


def set_recording(
    tx: Tx,
    service: Service,
    *,
    bodies: bool,
    max_body_bytes: int,
    retention_days: int | None,
    redact: Sequence[str],
    expected_revision: int | None = None,
) -> ServiceRecording:
    """Replaces the service's recording settings."""
    check_patterns(redact)
    row = recording_of(tx.session, service.id)
    if row is not None:
        check_revision(row, expected_revision, f"the recording of service {service.name}")
    before = _recording_snapshot(row)
    if row is None:
        row = ServiceRecording(service_id=service.id)
        tx.session.add(row)
    row.bodies = bodies
    row.max_body_bytes = max_body_bytes
    row.retention_days = retention_days
    row.redact = list(redact)
    tx.session.flush()
    changes = diff(before, _recording_snapshot(row))
    if changes:
        team = tx.session.get(Team, service.team_id)
        tx.audit(
            "update",
            "service_recording",
            f"{team.name if team else service.team_id}/{service.name}",
            entity_id=service.id,
            team_id=service.team_id,
            changes=changes,
        )
    return row


# -- webhooks --------------------------------------------------------------------------------


def webhook_snapshot(hook: Webhook) -> dict[str, Any]:
    return {
        "name": hook.name,
        "team_id": hook.team_id,
        "url": hook.url,
        "kinds": list(hook.kinds),
        "enabled": hook.enabled,
        "secret": hook.sealed_secret is not None,
    }


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    return by_id(session, Webhook, webhook_id, "webhook")


def webhooks(
    session: Session,
    *,
    team_ids: Collection[int] | None,
    team_id: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[Webhook]:
    """Webhooks in id order: `team_ids` limits them to those teams' (None: all, the
    platform's included)."""
    query: Select[Webhook] = select(Webhook)
    if team_ids is not None:
        query = query.where(Webhook.team_id.in_(list(team_ids)))
    if team_id is not None:
        query = query.where(Webhook.team_id == team_id)
    return page(session, query, Webhook.id, after=after, limit=limit)


def _label(session: Session, hook: Webhook) -> str:
    if hook.team_id is None:
        return hook.name
    team = session.get(Team, hook.team_id)
    return f"{team.name if team else hook.team_id}/{hook.name}"


def create_webhook(
    tx: Tx,
    *,
    team_id: int | None,
    name: str,
    url: str,
    kinds: Sequence[str],
    secret: str | None,
    enabled: bool = True,
) -> Webhook:
    hook = Webhook(
        team_id=team_id,
        name=name,
        url=url,
        kinds=list(kinds),
        sealed_secret=tx.store.seal({"secret": secret}) if secret else None,
        enabled=enabled,
    )
    tx.session.add(hook)
    tx.session.flush()
    tx.audit(
        "create",
        "webhook",
        _label(tx.session, hook),
        entity_id=hook.id,
        team_id=hook.team_id,
        changes=webhook_snapshot(hook),
    )
    return hook


def update_webhook(
    tx: Tx,
    hook: Webhook,
    *,
    expected_revision: int | None = None,
    name: str | None = None,
    url: str | None = None,
    kinds: Sequence[str] | None = None,
    secret: str | None = None,
    clear_secret: bool = False,
    enabled: bool | None = None,
) -> Webhook:
    check_revision(hook, expected_revision, f"webhook {hook.name}")
    before = webhook_snapshot(hook)
    if name is not None:
        hook.name = name
    if url is not None:
        hook.url = url
    if kinds is not None:
        hook.kinds = list(kinds)
    if secret:
        hook.sealed_secret = tx.store.seal({"secret": secret})
    elif clear_secret:
        hook.sealed_secret = None
    if enabled is not None:
        hook.enabled = enabled
    changes = diff(before, webhook_snapshot(hook))
    if secret:
        changes["secret"] = {"from": before["secret"], "to": "changed"}
    if changes:
        tx.session.flush()
        tx.audit(
            "update",
            "webhook",
            _label(tx.session, hook),
            entity_id=hook.id,
            team_id=hook.team_id,
            changes=changes,
        )
    return hook


def delete_webhook(tx: Tx, hook: Webhook, *, expected_revision: int | None = None) -> None:
    check_revision(hook, expected_revision, f"webhook {hook.name}")
    tx.audit(
        "delete",
        "webhook",
        _label(tx.session, hook),
        entity_id=hook.id,
        team_id=hook.team_id,
        changes=webhook_snapshot(hook),
    )
    tx.session.delete(hook)
    tx.session.flush()
