"""/deployments: each model deployment's circuit breaker and load, over the node's workers
(each worker learns on its own traffic and reports every second; docs/routing.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import Field

from tollway.admin.auth import Ctx
from tollway.admin.errors import ApiError
from tollway.admin.schemas import Out
from tollway.analytics.exposition import MetricsUnavailable

router = APIRouter(tags=["models"])


class BreakerCounts(Out):
    closed: int
    open: int
    half_open: int


class DeploymentHealthOut(Out):
    model: str
    deployment: str = Field(description="the deployment's label (its name, else provider/model)")
    state: Literal["closed", "degraded", "open"] = Field(
        description="closed: every worker sends it calls; open: no worker does (each waits out "
        "its cooldown); degraded: some workers have its breaker open or probing"
    )
    workers: BreakerCounts = Field(description="workers with its breaker in each state")
    in_flight: int
    consecutive_failures: int = Field(description="the most failures in a row of any worker")
    open_for_s: float = Field(description="the longest time left open of any worker")
    latency_s: float | None = Field(
        description="moving average of its latency (time to first byte for streams), averaged "
        "over the workers that measured it"
    )


class DeploymentHealthList(Out):
    items: list[DeploymentHealthOut]


@router.get(
    "/deployments",
    response_model=DeploymentHealthList,
    summary="Model deployments' circuit breakers and load",
)
def deployment_health(ctx: Ctx, request: Request) -> DeploymentHealthList:
    """Platform admins only. Workers that have not reported for 5 s are left out; an admin
    API that runs without gateway workers beside it has none to show."""
    ctx.principal.require_admin("read the deployments' health")
    read: Callable[[], str] | None = request.app.state.deployments
    if read is None:
        # No gateway workers report to this API (it runs on its own): none to show.
        return DeploymentHealthList(items=[])
    try:
        data = orjson.loads(read())
    except MetricsUnavailable as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "1"}) from exc
    return DeploymentHealthList.model_validate(data)
