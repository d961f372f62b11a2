"""`subscription`: an app may call a service only with an approved subscription to it.

A call under a service's own route prefix is that service's; a call to the shared model APIs
(`/v1/...`) is the service's that grants its model to the app. Without an approved
subscription the answer is 403, in the client's API format, saying why: not subscribed,
approval pending, rejected, or revoked. Keys that belong to no app (declared in the file's
`keys:`) are operators' keys: subscriptions do not apply to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.errors import GatewayError
from tollway.policies.base import Policy, Verdict
from tollway.policies.config import PolicyConfig

if TYPE_CHECKING:
    from tollway.config.snapshot import AppRef, ServiceRuntime, Tenancy
    from tollway.policies.context import RequestContext

_WHY = {
    "pending": ("subscription_pending", "is waiting for approval"),
    "rejected": ("subscription_rejected", "was rejected; you may apply again"),
    "revoked": ("subscription_revoked", "has been revoked"),
    "cancelled": ("subscription_cancelled", "was cancelled; subscribe again to use it"),
}


class SubscriptionConfig(PolicyConfig):
    """No settings: subscriptions and their states are the control plane's."""


class Subscription(Policy):
    name = "subscription"

    __slots__ = ("tenancy",)

    def __init__(self, tenancy: Tenancy) -> None:
        self.tenancy = tenancy

    def on_request(self, ctx: RequestContext) -> Verdict:
        """Under a service's prefix the service is known before the body is read."""
        key = ctx.key
        route = ctx.route
        if key is None or key.app is None or route is None or route.service is None:
            return None
        return self._check(key.app, route.service)

    def on_body(self, ctx: RequestContext) -> Verdict:
        key = ctx.key
        route = ctx.route
        model = ctx.model
        if key is None or key.app is None or route is None or model is None:
            return None
        if route.service is not None:
            # The prefix's service was checked in the request phase; it must grant the model.
            if route.service.kind == "ai" and model not in route.service.models:
                return _not_found(ctx, model)
            return None
        granting = self.tenancy.model_services.get(model, ())
        if not granting:
            return _not_found(ctx, model)
        # The common case first: the first granting service the app is approved for, looked
        # up directly (no list of statuses built, no comprehension's frame); `status` is a
        # plain dict lookup, so asking it again below on a refusal changes nothing.
        tenancy = self.tenancy
        subscriptions = tenancy.subscriptions
        app_id = key.app.id
        for service_id in granting:
            if subscriptions.get((app_id, service_id)) == "approved":
                ctx.service = tenancy.services[service_id]
                return None
        statuses = [(tenancy.status(app_id, s), s) for s in granting]
        # The most telling refusal: pending or revoked says more than "not subscribed".
        for wanted in ("pending", "revoked", "rejected", "cancelled"):
            for status, service_id in statuses:
                if status == wanted:
                    return _refusal(key.app, self.tenancy.services[service_id], status)
        names = ", ".join(f"`{self.tenancy.services[s].name}`" for s in granting)
        return GatewayError(
            403,
            f"The app `{key.app.name}` is not subscribed to a service that offers the model "
            f"`{model}` ({names}). Subscribe to one in the catalog.",
            code="subscription_required",
            type="permission_error",
        )

    def _check(self, app: AppRef, service: ServiceRuntime) -> Verdict:
        status = self.tenancy.status(app.id, service.id)
        if status == "approved":
            return None
        if status is None:
            return GatewayError(
                403,
                f"The app `{app.name}` is not subscribed to the service `{service.name}`. "
                "Subscribe to it in the catalog.",
                code="subscription_required",
                type="permission_error",
            )
        return _refusal(app, service, status)


def _refusal(app: AppRef, service: ServiceRuntime, status: str) -> GatewayError:
    code, why = _WHY.get(status, ("subscription_required", f"is {status}"))
    return GatewayError(
        403,
        f"The subscription of the app `{app.name}` to the service `{service.name}` {why}.",
        code=code,
        type="permission_error",
    )


def _not_found(ctx: RequestContext, model: str) -> GatewayError:
    route = ctx.route
    if route is not None and route.api is not None:
        return route.api.no_such_model(model)
    return GatewayError(404, f"The model `{model}` does not exist.", code="model_not_found")
