"""Prompt APIs in the admin API: the OpenAPI document of one (shown in the catalog, to whoever
may read the service) and of everything an app is subscribed to (its team's developers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.admin.auth import Ctx
from tollway.admin.routes.apps import readable_app
from tollway.admin.routes.services import readable
from tollway.admin.schemas import Id
from tollway.config.prompt_openapi import PromptApiEntry, document
from tollway.store import apps, services, versions
from tollway.store.errors import Invalid, NotFound
from tollway.store.schema import Service, Subscription, Team

router = APIRouter(tags=["prompt apis"])


def entry_of(session: Session, service: Service) -> PromptApiEntry | None:
    """A prompt service's serving version, for its document (None: nothing serves)."""
    serving = services.published(session, service.id)
    if serving is None:
        return None
    spec = versions.spec_of(serving)
    if spec.prompt is None:
        return None
    team = session.get(Team, service.team_id)
    name = f"{team.name if team else service.team_id}/{service.name}"
    definition = spec.prompt.model_dump(mode="json", exclude_none=True)
    return PromptApiEntry(
        name, service.route_prefix, serving.number, definition, service.description
    )


@router.get(
    "/catalog/{service_id}/openapi.json",
    summary="The OpenAPI document of a prompt API",
    response_model=dict[str, Any],
)
def prompt_api_document(service_id: Id, ctx: Ctx) -> dict[str, Any]:
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        readable(ctx, service)
        if service.kind != "prompt":
            raise Invalid.one("service_id", f"service {service.name!r} is not a prompt API")
        entry = entry_of(session, service)
        if entry is None:
            raise NotFound("published version of service", service_id)
    return document([entry], f"Prompt API {entry.name}")


@router.get(
    "/apps/{app_id}/openapi.json",
    summary="The OpenAPI document of every prompt API an app is subscribed to",
    response_model=dict[str, Any],
)
def app_document(app_id: Id, ctx: Ctx) -> dict[str, Any]:
    with ctx.store.read() as session:
        app = apps.get(session, app_id)
        readable_app(ctx, app)
        approved = session.scalars(
            select(Service)
            .join(Subscription, Subscription.service_id == Service.id)
            .where(
                Subscription.app_id == app.id,
                Subscription.status == "approved",
                Service.kind == "prompt",
            )
            .order_by(Service.route_prefix)
        )
        entries = [e for e in (entry_of(session, s) for s in approved) if e is not None]
    return document(entries, f"Prompt APIs of the app {app.name}")
