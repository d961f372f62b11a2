"""`GET /v1/models` and `GET /v1/models/{id}`: the models the caller's key may use.

Configured names come from the snapshot; a '*' route adds what its upstreams list, since any
of their models can be called through the gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.config.snapshot import Deployment, ProviderRuntime, RuntimeConfig
from tollway.errors import GatewayError
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.exchange import fetch
from tollway.proxy.replies import finish, send_error, upstream_failure
from tollway.proxy.upstream import UpstreamError, Upstreams, request_head

_JSON = b"application/json"


def _may_use(ctx: RequestContext, model: str) -> bool:
    """Whether the caller may use `model`: its key's model list, the service whose prefix it
    called under, and (for an app's key) its approved subscriptions."""
    key = ctx.key
    if key is not None and not key.may_use(model):
        return False
    service = ctx.route.service if ctx.route is not None else None
    if service is not None and model not in service.models:
        return False
    tenancy = ctx.config.tenancy
    if tenancy is not None and key is not None and key.app is not None and service is None:
        return tenancy.grants(key.app.id, model)
    return True


def _no_such_model(model: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class ModelList:
    __slots__ = ("balancers", "upstreams")

    def __init__(self, upstreams: Upstreams, balancers: Balancers) -> None:
        self.upstreams = upstreams
        self.balancers = balancers

    def list_models(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        config = ctx.config
        listed = [_model_object(name, config) for name in config.models if _may_use(ctx, name)]
        if config.wildcard is None:
            self._answer(ctx, conn, {"object": "list", "data": listed})
            return None
        return self._list_with_wildcard(ctx, conn, config.wildcard.deployments, listed)

    async def _list_with_wildcard(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        deployments: tuple[Deployment, ...],
        listed: list[dict[str, Any]],
    ) -> None:
        try:
            seen = {item["id"] for item in listed}
            for deployment in deployments:
                provider = deployment.provider
                status, _, data = await self._get(provider, "/models")
                if status != 200:
                    self._upstream_error(ctx, conn, provider, status, data)
                    return
                try:
                    upstream_models = orjson.loads(data).get("data", [])
                except (orjson.JSONDecodeError, AttributeError):
                    send_error(
                        ctx,
                        conn,
                        GatewayError(
                            502,
                            f"Upstream provider '{provider.name}' returned an invalid model list.",
                            code="upstream_protocol",
                        ),
                    )
                    return
                for item in upstream_models:
                    if (
                        isinstance(item, dict)
                        and item.get("id") not in seen
                        and _may_use(ctx, str(item.get("id")))
                    ):
                        seen.add(item.get("id"))
                        listed.append(item)
            self._answer(ctx, conn, {"object": "list", "data": listed})
        finally:
            finish(ctx)

    def retrieve_model(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        config = ctx.config
        model = ctx.request.path[len("/v1/models/") :]
        ctx.model = model
        if not _may_use(ctx, model):
            send_error(ctx, conn, _no_such_model(model))
            finish(ctx, "refused")
            return None
        if model in config.models:
            self._answer(ctx, conn, _model_object(model, config))
            return None
        if config.wildcard is None:
            send_error(ctx, conn, _no_such_model(model))
            finish(ctx, "refused")
            return None
        return self._retrieve_upstream(ctx, conn, self.balancers.pick(config.wildcard), model)

    async def _retrieve_upstream(
        self, ctx: RequestContext, conn: HttpConnection, deployment: Deployment, model: str
    ) -> None:
        try:
            provider = deployment.provider
            status, _, data = await self._get(provider, "/models/" + model)
            if status == 404:
                send_error(ctx, conn, _no_such_model(model))
            elif status >= 400:
                self._upstream_error(ctx, conn, provider, status, data)
            else:
                ctx.status = status
                ctx.outcome = "completed"
                conn.send_json(status, data)
        finally:
            finish(ctx)

    async def _get(
        self, provider: ProviderRuntime, path: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        head = request_head(
            b"GET", provider.path(path), provider.host, provider.headers, ((b"accept", _JSON),), 0
        )
        try:
            return await fetch(self.upstreams.pool(provider), head, b"")
        except UpstreamError as exc:
            return exc.status, [], upstream_failure(provider, exc).body()

    @staticmethod
    def _answer(ctx: RequestContext, conn: HttpConnection, payload: dict[str, Any]) -> None:
        ctx.status = 200
        conn.send_json(200, orjson.dumps(payload))
        finish(ctx, "completed")

    @staticmethod
    def _upstream_error(
        ctx: RequestContext,
        conn: HttpConnection,
        provider: ProviderRuntime,
        status: int,
        data: bytes,
    ) -> None:
        route = ctx.route
        assert route is not None and route.api is not None
        ctx.outcome = "upstream_error"
        status, body, passed = route.api.upstream_error(provider.name, status, [], data)
        ctx.status = status
        conn.send_json(status, body, passed)


def _model_object(name: str, config: RuntimeConfig) -> dict[str, Any]:
    deployment = config.models[name].deployments[0]
    out: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": config.created,
        "owned_by": deployment.provider.kind.name,
    }
    info = deployment.info
    if info is not None:
        # Beyond OpenAI's fields, what clients need to fit a request to the model.
        out["context_window"] = info.context_window
        out["max_output_tokens"] = info.max_output_tokens
    return out
