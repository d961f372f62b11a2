"""Services: what a team offers behind a route prefix, kind `ai` (models) or `rest` (an
upstream). Public services appear in every team's catalog, private ones in their own team's
only. Their content lives in versions (`store.versions`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from tollway.store.audit import diff
from tollway.store.database import Tx
from tollway.store.errors import Conflict
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import Service, ServiceVersion, Subscription, Team


def snapshot(service: Service) -> dict[str, Any]:
    return {
        "name": service.name,
        "team_id": service.team_id,
        "kind": service.kind,
        "visibility": service.visibility,
        "approval": service.approval,
        "route_prefix": service.route_prefix,
        "description": service.description,
    }


def find(session: Session, team_id: int, name: str) -> Service | None:
    return session.scalars(
        select(Service).where(Service.team_id == team_id, Service.name == name)
    ).one_or_none()


def get(session: Session, service_id: int) -> Service:
    return by_id(session, Service, service_id, "service")


def label(session: Session, service: Service) -> str:
    team = session.get(Team, service.team_id)
    return f"{team.name if team else service.team_id}/{service.name}"


def _prefix_free(session: Session, prefix: str, service_id: int | None = None) -> None:
    query = select(Service.id).where(func.lower(Service.route_prefix) == prefix.lower())
    if service_id is not None:
        query = query.where(Service.id != service_id)
    if session.scalars(query).first() is not None:
        raise Conflict(
            f"the route prefix {prefix} is already used by another service", "route_prefix"
        )


def create(
    tx: Tx,
    team: Team,
    name: str,
    *,
    kind: str,
    route_prefix: str,
    visibility: str = "private",
    approval: str = "manual",
    description: str = "",
) -> Service:
    if find(tx.session, team.id, name) is not None:
        raise Conflict(f"team {team.name!r} already has a service named {name!r}", "name")
    _prefix_free(tx.session, route_prefix)
    service = Service(
        team_id=team.id,
        name=name,
        kind=kind,
        route_prefix=route_prefix,
        visibility=visibility,
        approval=approval,
        description=description,
    )
    tx.session.add(service)
    tx.session.flush()
    tx.audit(
        "create",
        "service",
        f"{team.name}/{name}",
        entity_id=service.id,
        team_id=team.id,
        changes=snapshot(service),
    )
    return service


def visible(query: Select[Any], team_ids: Collection[int] | None) -> Select[Any]:
    """Limits a query over services to those visible to members of `team_ids` (None: all):
    their own teams' services and every public one."""
    if team_ids is None:
        return query
    return query.where(or_(Service.team_id.in_(list(team_ids)), Service.visibility == "public"))


def listing(
    session: Session,
    *,
    visible_to: Collection[int] | None = None,
    team_id: int | None = None,
    team_name: str | None = None,
    kind: str | None = None,
    visibility: str | None = None,
    name: str | None = None,
    published_only: bool = False,
    after: int | None = None,
    limit: int = 50,
) -> Page[Service]:
    query: Select[Service] = visible(select(Service), visible_to)
    if team_id is not None:
        query = query.where(Service.team_id == team_id)
    if team_name is not None:
        query = query.where(Service.team_id.in_(select(Team.id).where(Team.name == team_name)))
    if kind is not None:
        query = query.where(Service.kind == kind)
    if visibility is not None:
        query = query.where(Service.visibility == visibility)
    if name is not None:
        query = query.where(Service.name == name)
    if published_only:
        query = query.where(
            Service.id.in_(
                select(ServiceVersion.service_id).where(ServiceVersion.status == "published")
            )
        )
    return page(session, query, Service.id, after=after, limit=limit)


def published(session: Session, service_id: int) -> ServiceVersion | None:
    """The version that serves, if any."""
    return session.scalars(
        select(ServiceVersion).where(
            ServiceVersion.service_id == service_id, ServiceVersion.status == "published"
        )
    ).one_or_none()


def update(
    tx: Tx,
    service: Service,
    *,
    expected_revision: int | None = None,
    name: str | None = None,
    route_prefix: str | None = None,
    visibility: str | None = None,
    approval: str | None = None,
    description: str | None = None,
) -> Service:
    """Changes a service's settings (its kind is fixed at creation)."""
    check_revision(service, expected_revision, f"service {service.name}")
    before = snapshot(service)
    if name is not None and name != service.name:
        if find(tx.session, service.team_id, name) is not None:
            raise Conflict(f"the team already has a service named {name!r}", "name")
        service.name = name
    if route_prefix is not None and route_prefix != service.route_prefix:
        _prefix_free(tx.session, route_prefix, service.id)
        service.route_prefix = route_prefix
    if visibility is not None:
        service.visibility = visibility
    if approval is not None:
        service.approval = approval
    if description is not None:
        service.description = description
    changes = diff(before, snapshot(service))
    if changes:
        tx.session.flush()
        tx.audit(
            "update",
            "service",
            label(tx.session, service),
            entity_id=service.id,
            team_id=service.team_id,
            changes=changes,
        )
    return service


def delete(tx: Tx, service: Service, *, expected_revision: int | None = None) -> None:
    """Deletes a service with its versions; refused while apps hold live subscriptions."""
    check_revision(service, expected_revision, f"service {service.name}")
    live = tx.session.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(
            Subscription.service_id == service.id,
            Subscription.status.in_(("pending", "approved")),
        )
    )
    if live:
        raise Conflict(
            f"service {service.name!r} has {live} pending or approved subscriptions: "
            "revoke or reject them first"
        )
    tx.audit(
        "delete",
        "service",
        label(tx.session, service),
        entity_id=service.id,
        team_id=service.team_id,
        changes=snapshot(service),
    )
    tx.session.delete(service)
    tx.session.flush()
