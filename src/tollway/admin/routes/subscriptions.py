"""/subscriptions: an app asks for a service; the service's team decides.

The subscribing team (developer or above) applies and cancels; the owning team's team admins
(or a platform admin) approve, reject and revoke. Both teams see the subscription.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from tollway.admin.access import Principal, Role
from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.errors import forbidden
from tollway.admin.schemas import After, Body, BodyId, Id, IdFilter, Limit, Out, Page, Text
from tollway.config.entities import SubscriptionStatus
from tollway.store import apps, services, subscriptions
from tollway.store.errors import Invalid, NotFound
from tollway.store.schema import App, Service, Subscription

router = APIRouter(tags=["subscriptions"])


class SubscriptionIn(Body):
    app_id: BodyId
    service_id: BodyId
    note: Text = ""


class DecisionIn(Body):
    reason: Text = ""


class SubscriptionOut(Out):
    id: int
    app_id: int
    app: str
    service_id: int
    service: str
    status: str
    note: str
    reason: str
    requested_by: int | None
    decided_by: int | None
    requested_at: datetime
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime
    revision: int


def subscription_out(session: Session, subscription: Subscription) -> SubscriptionOut:
    app = apps.get(session, subscription.app_id)
    service = services.get(session, subscription.service_id)
    return SubscriptionOut(
        id=subscription.id,
        app_id=app.id,
        app=apps.label(session, app),
        service_id=service.id,
        service=services.label(session, service),
        status=subscription.status,
        note=subscription.note,
        reason=subscription.reason,
        requested_by=subscription.requested_by,
        decided_by=subscription.decided_by,
        requested_at=subscription.requested_at,
        decided_at=subscription.decided_at,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
        revision=subscription.revision,
    )


def _sides(
    session: Session, principal: Principal, subscription: Subscription
) -> tuple[App, Service]:
    """The app and service, if the principal is on either side; else NotFound."""
    app = apps.get(session, subscription.app_id)
    service = services.get(session, subscription.service_id)
    if not (principal.is_member(app.team_id) or principal.is_member(service.team_id)):
        raise NotFound("subscription", subscription.id)
    return app, service


@router.get("/subscriptions", response_model=Page[SubscriptionOut], summary="List subscriptions")
def list_subscriptions(
    ctx: Ctx,
    app_id: IdFilter = None,
    service_id: IdFilter = None,
    status: SubscriptionStatus | None = None,
    side: Literal["consumer", "owner"] | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[SubscriptionOut]:
    """Subscriptions of your teams' apps and to your teams' services. `side=owner` with
    `status=pending` lists the approvals waiting for you."""
    mine = ctx.principal.team_ids()
    with ctx.store.read() as session:
        found = subscriptions.listing(
            session,
            visible_to=mine,
            consumer_team_ids=mine if side == "consumer" and mine is not None else None,
            owner_team_ids=mine if side == "owner" and mine is not None else None,
            app_id=app_id,
            service_id=service_id,
            status=status,
            after=after,
            limit=limit,
        )
        return Page(
            items=[subscription_out(session, s) for s in found.items],
            next_after=found.next_after,
        )


@router.post(
    "/subscriptions",
    response_model=SubscriptionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an app to a service",
)
def apply(body: SubscriptionIn, ctx: Ctx, response: Response) -> SubscriptionOut:
    """Pending until the service's team approves it (approved at once for `auto` services).
    After a rejection, cancellation or revocation, applying again reopens it."""
    principal = ctx.principal
    with ctx.store.write(principal.actor) as tx:
        app = tx.session.get(App, body.app_id)
        if app is None or not principal.is_member(app.team_id):
            raise Invalid.one("app_id", f"unknown app {body.app_id}")
        principal.require_team(app.team_id, "developer", "subscribing apps", "app", app.id)
        service = tx.session.get(Service, body.service_id)
        if service is None or not (
            principal.is_member(service.team_id) or service.visibility == "public"
        ):
            raise Invalid.one("service_id", f"unknown service {body.service_id}")
        if service.visibility != "public" and service.team_id != app.team_id:
            raise Invalid.one(
                "service_id",
                "the service is private to its team: only that team's apps may subscribe",
            )
        subscription = subscriptions.apply(
            tx, app, service, requested_by=principal.user_id, note=body.note
        )
        out = subscription_out(tx.session, subscription)
    response.headers["Location"] = f"/admin/v1/subscriptions/{subscription.id}"
    tag(response, subscription.revision)
    return out


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Read a subscription",
)
def get_subscription(subscription_id: Id, ctx: Ctx, response: Response) -> SubscriptionOut:
    with ctx.store.read() as session:
        subscription = subscriptions.get(session, subscription_id)
        _sides(session, ctx.principal, subscription)
        out = subscription_out(session, subscription)
    tag(response, subscription.revision)
    return out


def _side(principal: Principal, team_id: int, role: Role, what: str, side: str) -> None:
    """The principal sees the subscription (it is on one side): acting on it takes `role`
    on the given side."""
    if not principal.is_member(team_id):
        raise forbidden(f"{what} is for the {side}'s team")
    principal.require_team(team_id, role, what, "subscription", team_id)


def _decide(
    ctx: Ctx, subscription_id: int, action: str, reason: str, if_match: int | None
) -> SubscriptionOut:
    principal = ctx.principal
    with ctx.store.write(principal.actor) as tx:
        subscription = subscriptions.get(tx.session, subscription_id)
        app, service = _sides(tx.session, principal, subscription)
        if action == "cancel":
            _side(principal, app.team_id, "developer", "cancelling subscriptions", "app")
            subscriptions.cancel(
                tx, subscription, decided_by=principal.user_id, expected_revision=if_match
            )
        else:
            what = {"approve": "approving", "reject": "rejecting", "revoke": "revoking"}[action]
            _side(principal, service.team_id, "team_admin", f"{what} subscriptions", "service")
            if action == "approve":
                subscriptions.approve(
                    tx, subscription, decided_by=principal.user_id, expected_revision=if_match
                )
            elif action == "reject":
                subscriptions.reject(
                    tx,
                    subscription,
                    decided_by=principal.user_id,
                    reason=reason,
                    expected_revision=if_match,
                )
            else:
                subscriptions.revoke(
                    tx,
                    subscription,
                    decided_by=principal.user_id,
                    reason=reason,
                    expected_revision=if_match,
                )
        return subscription_out(tx.session, subscription)


@router.post(
    "/subscriptions/{subscription_id}/approve",
    response_model=SubscriptionOut,
    summary="Approve a pending subscription",
)
def approve(subscription_id: Id, ctx: Ctx, if_match: IfMatch) -> SubscriptionOut:
    return _decide(ctx, subscription_id, "approve", "", if_match)


@router.post(
    "/subscriptions/{subscription_id}/reject",
    response_model=SubscriptionOut,
    summary="Reject a pending subscription",
)
def reject(subscription_id: Id, body: DecisionIn, ctx: Ctx, if_match: IfMatch) -> SubscriptionOut:
    return _decide(ctx, subscription_id, "reject", body.reason, if_match)


@router.post(
    "/subscriptions/{subscription_id}/revoke",
    response_model=SubscriptionOut,
    summary="Revoke an approved subscription",
)
def revoke(subscription_id: Id, body: DecisionIn, ctx: Ctx, if_match: IfMatch) -> SubscriptionOut:
    return _decide(ctx, subscription_id, "revoke", body.reason, if_match)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=SubscriptionOut,
    summary="Withdraw or give up a subscription",
)
def cancel(subscription_id: Id, ctx: Ctx, if_match: IfMatch) -> SubscriptionOut:
    return _decide(ctx, subscription_id, "cancel", "", if_match)
