"""Subscriptions of apps to services: the right to call.

    apply ──▶ pending ──approve──▶ approved ──revoke──▶ revoked
                 │                    │
                 └─reject─▶ rejected  └─cancel─▶ cancelled   (pending can be cancelled too)

An app has at most one subscription per service. Applying again after a rejection, a
cancellation or a revocation reopens it: it goes to pending (approved at once where the
service approves automatically, except after a revocation, which always needs a person).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from tollway.store import apps, services
from tollway.store.database import Tx
from tollway.store.errors import Conflict
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import App, Service, Subscription, utcnow

LIVE = ("pending", "approved")


def get(session: Session, subscription_id: int) -> Subscription:
    return by_id(session, Subscription, subscription_id, "subscription")


def find(session: Session, app_id: int, service_id: int) -> Subscription | None:
    return session.scalars(
        select(Subscription).where(
            Subscription.app_id == app_id, Subscription.service_id == service_id
        )
    ).one_or_none()


def listing(
    session: Session,
    *,
    visible_to: Collection[int] | None = None,
    consumer_team_ids: Collection[int] | None = None,
    owner_team_ids: Collection[int] | None = None,
    app_id: int | None = None,
    service_id: int | None = None,
    status: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[Subscription]:
    """`visible_to`: subscriptions whose app or service belongs to one of these teams
    (None: all); `consumer_team_ids` / `owner_team_ids` limit by the app's or the service's
    team."""
    query: Select[Subscription] = (
        select(Subscription)
        .join(App, App.id == Subscription.app_id)
        .join(Service, Service.id == Subscription.service_id)
    )
    if visible_to is not None:
        ids = list(visible_to)
        query = query.where(or_(App.team_id.in_(ids), Service.team_id.in_(ids)))
    if consumer_team_ids is not None:
        query = query.where(App.team_id.in_(list(consumer_team_ids)))
    if owner_team_ids is not None:
        query = query.where(Service.team_id.in_(list(owner_team_ids)))
    if app_id is not None:
        query = query.where(Subscription.app_id == app_id)
    if service_id is not None:
        query = query.where(Subscription.service_id == service_id)
    if status is not None:
        query = query.where(Subscription.status == status)
    return page(session, query, Subscription.id, after=after, limit=limit)


def _label(session: Session, app: App, service: Service) -> str:
    return f"{apps.label(session, app)} -> {services.label(session, service)}"


def _audit(
    tx: Tx,
    subscription: Subscription,
    app: App,
    service: Service,
    action: str,
    changes: dict[str, Any],
) -> None:
    # Both the owning team and the subscribing team see the entry.
    tx.audit(
        action,
        "subscription",
        _label(tx.session, app, service),
        entity_id=subscription.id,
        team_id=service.team_id,
        related_team_id=app.team_id,
        changes=changes,
    )


def apply(
    tx: Tx, app: App, service: Service, *, requested_by: int | None, note: str = ""
) -> Subscription:
    """An app asks for a service: pending, or approved at once for an `auto` service."""
    if services.published(tx.session, service.id) is None:
        raise Conflict(
            f"service {service.name!r} has no published version: there is nothing to "
            "subscribe to yet",
            "service_id",
        )
    existing = find(tx.session, app.id, service.id)
    automatic = service.approval == "auto"
    now = utcnow()
    if existing is None:
        subscription = Subscription(
            app_id=app.id,
            service_id=service.id,
            status="approved" if automatic else "pending",
            note=note,
            requested_by=requested_by,
            requested_at=now,
            decided_at=now if automatic else None,
        )
        tx.session.add(subscription)
        tx.session.flush()
        _audit(tx, subscription, app, service, "apply", {"status": subscription.status})
        return subscription
    if existing.status in LIVE:
        raise Conflict(
            f"the app's subscription to {service.name!r} is already {existing.status}",
            "service_id",
        )
    before = existing.status
    existing.status = "approved" if automatic and before != "revoked" else "pending"
    existing.note = note
    existing.reason = ""
    existing.requested_by = requested_by
    existing.requested_at = now
    existing.decided_by = None
    existing.decided_at = now if existing.status == "approved" else None
    tx.session.flush()
    _audit(
        tx, existing, app, service, "reapply", {"status": {"from": before, "to": existing.status}}
    )
    return existing


def _decide(
    tx: Tx,
    subscription: Subscription,
    *,
    allowed: tuple[str, ...],
    to: str,
    action: str,
    decided_by: int | None,
    reason: str = "",
    expected_revision: int | None = None,
) -> Subscription:
    check_revision(subscription, expected_revision, f"subscription {subscription.id}")
    if subscription.status not in allowed:
        raise Conflict(
            f"the subscription is {subscription.status}: it cannot be {to} "
            f"(only a {' or '.join(allowed)} one can)"
        )
    before = subscription.status
    subscription.status = to
    subscription.decided_by = decided_by
    subscription.decided_at = utcnow()
    if reason or to != "approved":
        subscription.reason = reason
    tx.session.flush()
    app = apps.get(tx.session, subscription.app_id)
    service = services.get(tx.session, subscription.service_id)
    changes: dict[str, Any] = {"status": {"from": before, "to": to}}
    if reason:
        changes["reason"] = reason
    _audit(tx, subscription, app, service, action, changes)
    return subscription


def approve(
    tx: Tx,
    subscription: Subscription,
    *,
    decided_by: int | None,
    expected_revision: int | None = None,
) -> Subscription:
    return _decide(
        tx,
        subscription,
        allowed=("pending",),
        to="approved",
        action="approve",
        decided_by=decided_by,
        expected_revision=expected_revision,
    )


def reject(
    tx: Tx,
    subscription: Subscription,
    *,
    decided_by: int | None,
    reason: str = "",
    expected_revision: int | None = None,
) -> Subscription:
    return _decide(
        tx,
        subscription,
        allowed=("pending",),
        to="rejected",
        action="reject",
        decided_by=decided_by,
        reason=reason,
        expected_revision=expected_revision,
    )


def revoke(
    tx: Tx,
    subscription: Subscription,
    *,
    decided_by: int | None,
    reason: str = "",
    expected_revision: int | None = None,
) -> Subscription:
    return _decide(
        tx,
        subscription,
        allowed=("approved",),
        to="revoked",
        action="revoke",
        decided_by=decided_by,
        reason=reason,
        expected_revision=expected_revision,
    )


def cancel(
    tx: Tx,
    subscription: Subscription,
    *,
    decided_by: int | None,
    expected_revision: int | None = None,
) -> Subscription:
    """The subscribing team withdraws a pending request or gives up an approved one."""
    return _decide(
        tx,
        subscription,
        allowed=LIVE,
        to="cancelled",
        action="cancel",
        decided_by=decided_by,
        expected_revision=expected_revision,
    )


def declare(tx: Tx, app: App, service: Service, status: str) -> tuple[Subscription, bool]:
    """Sets a subscription's status as a declarative file says (no approval step);
    returns it and whether anything changed."""
    existing = find(tx.session, app.id, service.id)
    now = utcnow()
    if existing is None:
        subscription = Subscription(
            app_id=app.id,
            service_id=service.id,
            status=status,
            requested_at=now,
            decided_at=None if status == "pending" else now,
        )
        tx.session.add(subscription)
        tx.session.flush()
        _audit(tx, subscription, app, service, "declare", {"status": status})
        return subscription, True
    if existing.status == status:
        return existing, False
    before = existing.status
    existing.status = status
    existing.decided_at = None if status == "pending" else now
    tx.session.flush()
    _audit(tx, existing, app, service, "declare", {"status": {"from": before, "to": status}})
    return existing, True
