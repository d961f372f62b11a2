"""/services: what teams offer, and /catalog: what a caller may see and subscribe to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, Field
from sqlalchemy.orm import Session

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.schemas import After, Body, BodyId, Id, IdFilter, Limit, Out, Page, Text
from tollway.config.entities import (
    Approval,
    Name,
    RoutePrefix,
    ServiceKind,
    ServiceSpec,
    Visibility,
    check_route_prefix,
)
from tollway.store import services, teams, versions
from tollway.store.errors import Invalid, NotFound
from tollway.store.schema import Service, Team

router = APIRouter(tags=["services"])

Prefix = Annotated[RoutePrefix, AfterValidator(check_route_prefix)]


class ServiceIn(Body):
    team_id: BodyId
    name: Name
    kind: ServiceKind
    route_prefix: Prefix = Field(description="where the service is reached, e.g. /billing")
    visibility: Visibility = "private"
    approval: Approval = "manual"
    description: Text = ""


class ServicePatch(Body):
    name: Name | None = None
    route_prefix: Prefix | None = None
    visibility: Visibility | None = None
    approval: Approval | None = None
    description: Text | None = None


class ServiceOut(Out):
    id: int
    team_id: int
    team: str
    name: str
    kind: str
    route_prefix: str
    visibility: str
    approval: str
    description: str
    published_version: int | None = Field(description="the version that serves, if any")
    canary_version: int | None = Field(
        None, description="a version serving a share of the calls beside it, if any"
    )
    canary_weight: int | None = Field(None, description="the canary's share, in percent")
    created_at: datetime
    updated_at: datetime
    revision: int


def service_out(session: Session, service: Service) -> ServiceOut:
    serving = services.published(session, service.id)
    canary = versions.canary(session, service.id)
    team = session.get(Team, service.team_id)
    return ServiceOut(
        id=service.id,
        team_id=service.team_id,
        team=team.name if team else "",
        name=service.name,
        kind=service.kind,
        route_prefix=service.route_prefix,
        visibility=service.visibility,
        approval=service.approval,
        description=service.description,
        published_version=serving.number if serving else None,
        canary_version=canary.number if canary else None,
        canary_weight=canary.traffic_weight if canary else None,
        created_at=service.created_at,
        updated_at=service.updated_at,
        revision=service.revision,
    )


class CatalogEntry(Out):
    service_id: int
    team_id: int
    team: str
    name: str
    kind: str
    route_prefix: str
    visibility: str
    approval: str
    description: str
    version: int
    models: list[str] | None = Field(description="kind ai: the models it grants")
    input_schema: dict[str, Any] | None = Field(
        None, description="kind prompt: the JSON Schema of its input"
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="kind prompt: the JSON Schema of its answer (None: text)"
    )
    openapi: str | None = Field(
        None,
        description="kind prompt, and kind rest with a document: where its OpenAPI document "
        "is (this API's path)",
    )
    mcp: str | None = Field(
        None,
        description="its own MCP endpoint on the gateway, where it offers tools (the tools of "
        "every approved subscription are also at /mcp)",
    )


@router.get("/services", response_model=Page[ServiceOut], summary="List services")
def list_services(
    ctx: Ctx,
    team_id: IdFilter = None,
    team: Name | None = None,
    kind: ServiceKind | None = None,
    visibility: Visibility | None = None,
    name: Name | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[ServiceOut]:
    """Your teams' services and every public one (all for a platform admin); `team` filters
    by the owning team's name."""
    with ctx.store.read() as session:
        found = services.listing(
            session,
            visible_to=ctx.principal.team_ids(),
            team_id=team_id,
            team_name=team,
            kind=kind,
            visibility=visibility,
            name=name,
            after=after,
            limit=limit,
        )
        return Page(
            items=[service_out(session, s) for s in found.items], next_after=found.next_after
        )


@router.post(
    "/services",
    response_model=ServiceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a service",
)
def create_service(body: ServiceIn, ctx: Ctx, response: Response) -> ServiceOut:
    """Its content comes in versions: create one, then publish it."""
    with ctx.store.write(ctx.principal.actor) as tx:
        try:
            team = teams.get(tx.session, body.team_id)
            ctx.principal.require_team(team.id, "team_admin", "creating services", "team", team.id)
        except NotFound:
            raise Invalid.one("team_id", f"unknown team {body.team_id}") from None
        service = services.create(
            tx,
            team,
            body.name,
            kind=body.kind,
            route_prefix=body.route_prefix,
            visibility=body.visibility,
            approval=body.approval,
            description=body.description,
        )
        out = service_out(tx.session, service)
    response.headers["Location"] = f"/admin/v1/services/{service.id}"
    tag(response, service.revision)
    return out


def readable(ctx: Ctx, service: Service) -> None:
    ctx.principal.require_service(
        service.team_id, service.visibility, None, "reading the service", service.id
    )


def changeable(ctx: Ctx, service: Service, what: str) -> None:
    ctx.principal.require_service(
        service.team_id, service.visibility, "team_admin", what, service.id
    )


@router.get("/services/{service_id}", response_model=ServiceOut, summary="Read a service")
def get_service(service_id: Id, ctx: Ctx, response: Response) -> ServiceOut:
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        readable(ctx, service)
        out = service_out(session, service)
    tag(response, service.revision)
    return out


@router.patch("/services/{service_id}", response_model=ServiceOut, summary="Change a service")
def update_service(
    service_id: Id, body: ServicePatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> ServiceOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        changeable(ctx, service, "changing the service")
        service = services.update(
            tx,
            service,
            expected_revision=if_match,
            name=body.name,
            route_prefix=body.route_prefix,
            visibility=body.visibility,
            approval=body.approval,
            description=body.description,
        )
        out = service_out(tx.session, service)
    tag(response, service.revision)
    return out


@router.delete(
    "/services/{service_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a service"
)
def delete_service(service_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        changeable(ctx, service, "deleting the service")
        services.delete(tx, service, expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _entry(session: Session, service: Service) -> CatalogEntry | None:
    serving = services.published(session, service.id)
    if serving is None:
        return None
    team = session.get(Team, service.team_id)
    spec = versions.spec_of(serving)
    return CatalogEntry(
        service_id=service.id,
        team_id=service.team_id,
        team=team.name if team else "",
        name=service.name,
        kind=service.kind,
        route_prefix=service.route_prefix,
        visibility=service.visibility,
        approval=service.approval,
        description=service.description,
        version=serving.number,
        models=spec.models,
        input_schema=spec.prompt.input_schema if spec.prompt is not None else None,
        output_schema=spec.prompt.output_schema if spec.prompt is not None else None,
        openapi=f"/admin/v1/catalog/{service.id}/openapi.json"
        if spec.prompt is not None or spec.openapi is not None
        else None,
        mcp=mcp_endpoint(service.kind, service.route_prefix, spec),
    )


def mcp_endpoint(kind: str, prefix: str, spec: ServiceSpec) -> str | None:
    """Where a service's own MCP endpoint is (None: it offers no tools)."""
    if kind in ("prompt", "mcp"):
        return f"{prefix}/mcp"
    if kind == "rest" and spec.openapi is not None and spec.openapi.mcp:
        return f"/mcp{prefix}"
    return None


@router.get("/catalog", response_model=Page[CatalogEntry], summary="The service catalog")
def catalog(
    ctx: Ctx,
    kind: ServiceKind | None = None,
    team_id: IdFilter = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[CatalogEntry]:
    """Services with a published version that you may subscribe to: every public one and
    your own teams' private ones."""
    with ctx.store.read() as session:
        found = services.listing(
            session,
            visible_to=ctx.principal.team_ids(),
            kind=kind,
            team_id=team_id,
            published_only=True,
            after=after,
            limit=limit,
        )
        items = [e for e in (_entry(session, s) for s in found.items) if e is not None]
        return Page(items=items, next_after=found.next_after)


@router.get(
    "/catalog/{service_id}", response_model=CatalogEntry, summary="A service in the catalog"
)
def catalog_entry(service_id: Id, ctx: Ctx) -> CatalogEntry:
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        readable(ctx, service)
        entry = _entry(session, service)
        if entry is None:
            raise NotFound("service", service_id)
        return entry
