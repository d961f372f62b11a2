"""Teams (tenants) and their members' roles: team_admin, developer, viewer."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tollway.store.audit import diff
from tollway.store.database import Tx
from tollway.store.errors import Conflict, NotFound
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import App, Service, Team, TeamMember, User


def snapshot(team: Team) -> dict[str, Any]:
    return {"name": team.name, "description": team.description}


def find(session: Session, name: str) -> Team | None:
    return session.scalars(select(Team).where(Team.name == name)).one_or_none()


def get(session: Session, team_id: int) -> Team:
    return by_id(session, Team, team_id, "team")


def create(tx: Tx, name: str, *, description: str = "") -> Team:
    if find(tx.session, name) is not None:
        raise Conflict(f"a team named {name!r} already exists", "name")
    team = Team(name=name, description=description)
    tx.session.add(team)
    tx.session.flush()
    tx.audit("create", "team", name, entity_id=team.id, team_id=team.id, changes=snapshot(team))
    return team


def listing(
    session: Session,
    *,
    ids: Collection[int] | None = None,
    name: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[Team]:
    """Teams in id order; `ids` limits them to those (None: all)."""
    query: Select[Team] = select(Team)
    if ids is not None:
        query = query.where(Team.id.in_(list(ids)))
    if name is not None:
        query = query.where(Team.name == name)
    return page(session, query, Team.id, after=after, limit=limit)


def update(
    tx: Tx,
    team: Team,
    *,
    expected_revision: int | None = None,
    name: str | None = None,
    description: str | None = None,
) -> Team:
    check_revision(team, expected_revision, f"team {team.name}")
    before = snapshot(team)
    if name is not None and name != team.name:
        if find(tx.session, name) is not None:
            raise Conflict(f"a team named {name!r} already exists", "name")
        team.name = name
    if description is not None:
        team.description = description
    changes = diff(before, snapshot(team))
    if changes:
        tx.session.flush()
        tx.audit("update", "team", team.name, entity_id=team.id, team_id=team.id, changes=changes)
    return team


def delete(tx: Tx, team: Team, *, expected_revision: int | None = None) -> None:
    """Only an empty team goes: its apps and services must be deleted first."""
    check_revision(team, expected_revision, f"team {team.name}")
    for model, what in ((App, "apps"), (Service, "services")):
        count = tx.session.scalar(
            select(func.count()).select_from(model).where(model.team_id == team.id)
        )
        if count:
            raise Conflict(f"team {team.name!r} still owns {count} {what}: delete them first")
    tx.audit(
        "delete", "team", team.name, entity_id=team.id, team_id=team.id, changes=snapshot(team)
    )
    tx.session.delete(team)
    tx.session.flush()


# --- members ----------------------------------------------------------------------------


def roles_of(session: Session, user_id: int) -> dict[int, str]:
    """team id -> the user's role there."""
    rows = session.execute(
        select(TeamMember.team_id, TeamMember.role).where(TeamMember.user_id == user_id)
    )
    return {team_id: role for team_id, role in rows}


def members(session: Session, team_id: int) -> list[tuple[TeamMember, User]]:
    rows = session.execute(
        select(TeamMember, User)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id)
        .order_by(User.name)
    )
    return [(membership, user) for membership, user in rows]


def member(session: Session, team_id: int, user_id: int) -> TeamMember:
    found = session.get(TeamMember, (team_id, user_id))
    if found is None:
        raise NotFound("member", user_id)
    return found


def add_member(tx: Tx, team: Team, user: User, role: str) -> TeamMember:
    if tx.session.get(TeamMember, (team.id, user.id)) is not None:
        raise Conflict(f"{user.name} is already a member of {team.name}", "user")
    membership = TeamMember(team_id=team.id, user_id=user.id, role=role)
    tx.session.add(membership)
    tx.session.flush()
    tx.audit(
        "add_member",
        "team",
        team.name,
        entity_id=team.id,
        team_id=team.id,
        changes={"user": user.name, "role": role},
    )
    return membership


def set_role(
    tx: Tx,
    team: Team,
    user: User,
    role: str,
    *,
    expected_revision: int | None = None,
) -> TeamMember:
    membership = member(tx.session, team.id, user.id)
    check_revision(membership, expected_revision, f"membership of {user.name}")
    if membership.role != role:
        tx.audit(
            "set_role",
            "team",
            team.name,
            entity_id=team.id,
            team_id=team.id,
            changes={"user": user.name, "role": {"from": membership.role, "to": role}},
        )
        membership.role = role
        tx.session.flush()
    return membership


def remove_member(tx: Tx, team: Team, user: User) -> None:
    membership = member(tx.session, team.id, user.id)
    tx.audit(
        "remove_member",
        "team",
        team.name,
        entity_id=team.id,
        team_id=team.id,
        changes={"user": user.name, "role": membership.role},
    )
    tx.session.delete(membership)
    tx.session.flush()
