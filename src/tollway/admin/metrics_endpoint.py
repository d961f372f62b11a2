"""GET /metrics on the admin port: the recorder's Prometheus exposition, read from its
private socket. Open unless a token is configured (TOLLWAY_METRICS_TOKEN)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from tollway.analytics.exposition import CONTENT_TYPE, MetricsUnavailable, authorized


def install(app: FastAPI, metrics: Callable[[], str], token: str | None) -> None:
    async def prometheus(request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), token):
            return JSONResponse({"error": "a bearer token is required"}, status_code=401)
        try:
            text = await run_in_threadpool(metrics)
        except MetricsUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    app.add_api_route("/metrics", prometheus, methods=["GET"], include_in_schema=False)
