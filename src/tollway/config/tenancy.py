"""Compiling the store's tenancy into the snapshot: apps' keys, published services, and every
app's subscriptions, so that the data plane decides who may call what without asking the
store."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from tollway.config.snapshot import AppRef, ClientKey, RestTarget, ServiceRuntime, Tenancy
from tollway.config.transport import Origin, UpstreamTimeouts

if TYPE_CHECKING:
    from tollway.store.state import ControlPlaneState, ServiceState


def app_keys(state: ControlPlaneState) -> dict[bytes, ClientKey]:
    """The apps' keys by digest; revoked and expired ones stay, so that they answer 401 with
    the reason rather than as unknown."""
    keys: dict[bytes, ClientKey] = {}
    for digest, key in state.keys.items():
        app = state.apps[key.app_id]
        team = state.teams[app.team_id]
        keys[digest] = ClientKey.build(
            f"{team.name}/{app.name}/{key.name}",
            key.models,
            app=AppRef(app.id, f"{team.name}/{app.name}", team.id, team.name),
            key_id=key.id,
            expires_at=key.expires_at.timestamp() if key.expires_at is not None else None,
            revoked=key.revoked_at is not None,
            networks=key.cidrs,
        )
    return keys


def tenancy(state: ControlPlaneState) -> Tenancy:
    services: dict[int, ServiceRuntime] = {}
    model_services: dict[str, list[int]] = {}
    for service in state.services.values():
        runtime = _service(state, service)
        if runtime is None:
            continue
        services[service.id] = runtime
        for model in runtime.models:
            model_services.setdefault(model, []).append(service.id)
    return Tenancy(
        services=MappingProxyType(services),
        model_services=MappingProxyType({m: tuple(ids) for m, ids in model_services.items()}),
        subscriptions=MappingProxyType({pair: s.status for pair, s in state.subscriptions.items()}),
    )


def _service(state: ControlPlaneState, service: ServiceState) -> ServiceRuntime | None:
    """The service as it serves: its published version, or None (nothing published)."""
    published = service.published
    if published is None:
        return None
    team = state.teams[service.team_id]
    name = f"{team.name}/{service.name}"
    if service.kind == "ai":
        return ServiceRuntime(
            service.id,
            name,
            service.team_id,
            "ai",
            service.route_prefix,
            models=frozenset(published.models or ()),
        )
    upstream = published.upstream
    if upstream is None:
        return None
    t = upstream.timeouts
    timeouts = UpstreamTimeouts(
        t.connect_s, t.first_byte_s, t.idle_s, t.pool_idle_s, t.max_response_bytes
    )
    targets = []
    for i, target in enumerate(upstream.targets):
        origin = Origin.from_url(target.url)
        targets.append(
            RestTarget(
                f"service:{service.id}:{i}", origin, timeouts, origin.host_header, target.weight
            )
        )
    return ServiceRuntime(
        service.id,
        name,
        service.team_id,
        "rest",
        service.route_prefix,
        targets=tuple(targets),
        strip_prefix=upstream.strip_prefix,
        headers=tuple((k.lower().encode(), v.encode()) for k, v in upstream.headers.items()),
    )


def services_by_prefix(tenancy: Tenancy) -> Mapping[str, ServiceRuntime]:
    return {s.prefix: s for s in tenancy.services.values()}
