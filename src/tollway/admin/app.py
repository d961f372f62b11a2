"""The admin API application: `create_admin_app(store)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request

from tollway import __version__
from tollway.admin import console, errors, metrics_endpoint
from tollway.admin.input_guard import storable_text
from tollway.admin.routes import (
    analytics,
    apps,
    audit,
    deployment_health,
    keys,
    limits,
    mcp_endpoints,
    models,
    prompt_apis,
    providers,
    recording,
    services,
    subscriptions,
    teams,
    users,
    versions,
)
from tollway.admin.schemas import ErrorBody, Out
from tollway.store.database import Store

PREFIX = "/admin/v1"

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "the body cannot be read (not UTF-8 text)"),
        (401, "no valid bearer token"),
        (403, "the caller's role does not allow it"),
        (404, "no such entity (or one of another team)"),
        (409, "a duplicate name, or a change the entity's state does not allow"),
        (412, "If-Match names an older revision"),
        (422, "the request is not valid (each field's problem is named)"),
        (503, "the store is unavailable"),
    )
}


class Health(Out):
    status: str
    config_version: int


def create_admin_app(
    store: Store,
    *,
    title: str = "Tollway admin API",
    metrics: Callable[[], str] | None = None,
    deployments: Callable[[], str] | None = None,
    metrics_token: str | None = None,
    limits_config: limits.Limits | None = None,
) -> FastAPI:
    """The admin API over `store`, under /admin/v1/, described at /admin/v1/openapi.json;
    with `metrics` (the recorder's exposition), Prometheus' GET /metrics beside it; with
    `deployments` (the recorder's JSON of the model deployments' breakers), GET
    /admin/v1/deployments; `limits_config`, the gateway's rate limits and budgets that GET
    /admin/v1/limits shows (None: none configured)."""
    app = FastAPI(
        title=title,
        version=__version__,
        description="Manage Tollway's control plane: teams, users, apps and keys, providers "
        "and models, services and their versions, subscriptions, the catalog, the audit log. "
        "Authenticate with `Authorization: Bearer <admin token>`.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        responses={422: {"model": ErrorBody, "description": "the request is not valid"}},
    )
    app.state.store = store
    app.state.deployments = deployments
    app.state.limits = limits_config
    errors.install(app)

    guarded = APIRouter(prefix=PREFIX, dependencies=[Depends(storable_text)], responses=_ERRORS)
    for module in (
        teams,
        users,
        apps,
        keys,
        providers,
        models,
        services,
        versions,
        prompt_apis,
        mcp_endpoints,
        subscriptions,
        audit,
        recording,
        analytics,
        deployment_health,
        limits,
    ):
        guarded.include_router(module.router)
    guarded.include_router(users.public)

    @guarded.get("/health", response_model=Health, tags=["health"], summary="Liveness")
    def health(request: Request) -> Health:
        """No authentication: whether the store answers, and its config version."""
        current: Store = request.app.state.store
        return Health(status="ok", config_version=current.current_version())

    app.include_router(guarded)
    console.install(app)
    if metrics is not None:
        metrics_endpoint.install(app, metrics, metrics_token)
    return app
