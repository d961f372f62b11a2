"""Which MCP endpoints an app can use: the gateway's /mcp (every tool of its approved
subscriptions) and each subscribed service's own endpoint, with how far its subscription
has come (docs/mcp.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import select

from tollway.admin.auth import Ctx
from tollway.admin.routes.apps import readable_app
from tollway.admin.routes.services import mcp_endpoint
from tollway.admin.schemas import Id, Out
from tollway.store import apps, services, versions
from tollway.store.schema import Service, Subscription, Team

router = APIRouter(tags=["apps"])


class McpService(Out):
    service_id: int
    service: str = Field(description="TEAM/NAME")
    kind: str
    endpoint: str = Field(description="the service's own MCP endpoint (its tools only)")
    subscription: str = Field(
        description="pending, approved, rejected, cancelled or revoked: only approved "
        "subscriptions' tools are offered"
    )


class McpEndpoints(Out):
    endpoint: str = Field(description="every tool of the app's approved subscriptions")
    services: list[McpService]


@router.get(
    "/apps/{app_id}/mcp",
    response_model=McpEndpoints,
    summary="The MCP endpoints an app can use",
)
def app_mcp_endpoints(app_id: Id, ctx: Ctx) -> McpEndpoints:
    """The services the app is subscribed to that offer MCP tools (prompt APIs, MCP servers,
    REST services whose published version has an OpenAPI document), with their endpoints."""
    with ctx.store.read() as session:
        app = apps.get(session, app_id)
        readable_app(ctx, app)
        rows = session.execute(
            select(Service, Subscription.status, Team.name)
            .join(Subscription, Subscription.service_id == Service.id)
            .join(Team, Team.id == Service.team_id)
            .where(Subscription.app_id == app.id)
            .order_by(Service.route_prefix)
        ).all()
        found = []
        for service, subscription, team in rows:
            serving = services.published(session, service.id)
            if serving is None:
                continue
            endpoint = mcp_endpoint(service.kind, service.route_prefix, versions.spec_of(serving))
            if endpoint is not None:
                found.append(
                    McpService(
                        service_id=service.id,
                        service=f"{team}/{service.name}",
                        kind=service.kind,
                        endpoint=endpoint,
                        subscription=subscription,
                    )
                )
    return McpEndpoints(endpoint="/mcp", services=found)
