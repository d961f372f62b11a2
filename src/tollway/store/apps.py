"""Apps: the API consumers a team owns. An app holds keys and subscriptions."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tollway.store.audit import diff
from tollway.store.database import Tx
from tollway.store.errors import Conflict
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import App, Team

# `update`'s default: leave the app's tool lists as they are.
KEEP: Any = object()


def snapshot(app: App) -> dict[str, Any]:
    return {
        "name": app.name,
        "team_id": app.team_id,
        "description": app.description,
        "tools": app.tools,
    }


def find(session: Session, team_id: int, name: str) -> App | None:
    return session.scalars(
        select(App).where(App.team_id == team_id, App.name == name)
    ).one_or_none()


def get(session: Session, app_id: int) -> App:
    return by_id(session, App, app_id, "app")


def label(session: Session, app: App) -> str:
    team = session.get(Team, app.team_id)
    return f"{team.name if team else app.team_id}/{app.name}"


def create(
    tx: Tx, team: Team, name: str, *, description: str = "", tools: dict[str, Any] | None = None
) -> App:
    """`tools`: the MCP tools it may use, {"allow": [...] or None, "deny": [...]} (None: all
    its subscriptions offer)."""
    if find(tx.session, team.id, name) is not None:
        raise Conflict(f"team {team.name!r} already has an app named {name!r}", "name")
    app = App(team_id=team.id, name=name, description=description, tools=tools)
    tx.session.add(app)
    tx.session.flush()
    tx.audit(
        "create",
        "app",
        f"{team.name}/{name}",
        entity_id=app.id,
        team_id=team.id,
        changes=snapshot(app),
    )
    return app


def listing(
    session: Session,
    *,
    team_ids: Collection[int] | None = None,
    team_id: int | None = None,
    name: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[App]:
    """Apps in id order; `team_ids` limits them to those teams' (None: all)."""
    query: Select[App] = select(App)
    if team_ids is not None:
        query = query.where(App.team_id.in_(list(team_ids)))
    if team_id is not None:
        query = query.where(App.team_id == team_id)
    if name is not None:
        query = query.where(App.name == name)
    return page(session, query, App.id, after=after, limit=limit)


def update(
    tx: Tx,
    app: App,
    *,
    expected_revision: int | None = None,
    name: str | None = None,
    description: str | None = None,
    tools: dict[str, Any] | None = KEEP,
) -> App:
    check_revision(app, expected_revision, f"app {app.name}")
    before = snapshot(app)
    if name is not None and name != app.name:
        if find(tx.session, app.team_id, name) is not None:
            raise Conflict(f"the team already has an app named {name!r}", "name")
        app.name = name
    if description is not None:
        app.description = description
    if tools is not KEEP:
        app.tools = tools
    changes = diff(before, snapshot(app))
    if changes:
        tx.session.flush()
        tx.audit(
            "update",
            "app",
            label(tx.session, app),
            entity_id=app.id,
            team_id=app.team_id,
            changes=changes,
        )
    return app


def delete(tx: Tx, app: App, *, expected_revision: int | None = None) -> None:
    """Deletes the app with its keys and subscriptions."""
    check_revision(app, expected_revision, f"app {app.name}")
    tx.audit(
        "delete",
        "app",
        label(tx.session, app),
        entity_id=app.id,
        team_id=app.team_id,
        changes=snapshot(app),
    )
    tx.session.delete(app)
    tx.session.flush()
