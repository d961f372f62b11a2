"""/apps: the API consumers of a team."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import Field

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.schemas import After, Body, BodyId, Id, IdFilter, Limit, Out, Page, Text
from tollway.config.entities import Name, ToolAccessConfig
from tollway.store import apps, teams
from tollway.store.errors import Invalid, NotFound
from tollway.store.schema import App

router = APIRouter(tags=["apps"])


class AppIn(Body):
    team_id: BodyId
    name: Name
    description: Text = ""
    tools: ToolAccessConfig | None = Field(
        None, description="the MCP tools it may see and call (default: all it is offered)"
    )


class AppPatch(Body):
    name: Name | None = None
    description: Text | None = None
    tools: ToolAccessConfig | None = Field(
        None, description="replaces its tool lists; null: every tool it is offered"
    )


class AppOut(Out):
    id: int
    team_id: int
    name: str
    description: str
    tools: ToolAccessConfig | None = None
    created_at: datetime
    updated_at: datetime
    revision: int


def app_out(app: App) -> AppOut:
    return AppOut(
        id=app.id,
        team_id=app.team_id,
        name=app.name,
        description=app.description,
        tools=ToolAccessConfig.model_validate(app.tools) if app.tools is not None else None,
        created_at=app.created_at,
        updated_at=app.updated_at,
        revision=app.revision,
    )


def _tools(given: ToolAccessConfig | None) -> dict[str, Any] | None:
    return None if given is None else given.model_dump(mode="json")


def readable_app(ctx: Ctx, app: App) -> None:
    ctx.principal.require_team(app.team_id, "viewer", "reading the app", "app", app.id)


@router.get("/apps", response_model=Page[AppOut], summary="List apps")
def list_apps(
    ctx: Ctx,
    team_id: IdFilter = None,
    name: Name | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[AppOut]:
    """Your teams' apps (every app for a platform admin); filter by team and name."""
    with ctx.store.read() as session:
        found = apps.listing(
            session,
            team_ids=ctx.principal.team_ids(),
            team_id=team_id,
            name=name,
            after=after,
            limit=limit,
        )
        return Page(items=[app_out(a) for a in found.items], next_after=found.next_after)


@router.post(
    "/apps", response_model=AppOut, status_code=status.HTTP_201_CREATED, summary="Create an app"
)
def create_app(body: AppIn, ctx: Ctx, response: Response) -> AppOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        try:
            team = teams.get(tx.session, body.team_id)
            ctx.principal.require_team(team.id, "developer", "creating apps", "team", team.id)
        except NotFound:
            raise Invalid.one("team_id", f"unknown team {body.team_id}") from None
        app = apps.create(
            tx, team, body.name, description=body.description, tools=_tools(body.tools)
        )
    response.headers["Location"] = f"/admin/v1/apps/{app.id}"
    tag(response, app.revision)
    return app_out(app)


@router.get("/apps/{app_id}", response_model=AppOut, summary="Read an app")
def get_app(app_id: Id, ctx: Ctx, response: Response) -> AppOut:
    with ctx.store.read() as session:
        app = apps.get(session, app_id)
        readable_app(ctx, app)
    tag(response, app.revision)
    return app_out(app)


@router.patch("/apps/{app_id}", response_model=AppOut, summary="Change an app")
def update_app(
    app_id: Id, body: AppPatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> AppOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "changing apps", "app", app_id)
        app = apps.update(
            tx,
            app,
            expected_revision=if_match,
            name=body.name,
            description=body.description,
            tools=_tools(body.tools) if "tools" in body.model_fields_set else apps.KEEP,
        )
    tag(response, app.revision)
    return app_out(app)


@router.delete(
    "/apps/{app_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an app with its keys and subscriptions",
)
def delete_app(app_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "deleting apps", "app", app_id)
        apps.delete(tx, app, expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
