"""The whole control-plane state at one config version, as immutable objects: what the
data plane's snapshot is compiled from.

Keys are given by their raw SHA-256 digest (the data plane never sees a key); providers as
their `ProviderConfig` with credentials decrypted (into `credentials`); models and prices as
their config models, so that a store-backed gateway and a YAML-only one compile the same way.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.config.entities import ContextConfig, ServiceSpec
from tollway.config.mcp_server import McpServerSpec
from tollway.config.models import CatalogEntryConfig, GatewayConfig, ModelConfig, ProviderConfig
from tollway.config.prompt_api import PromptApiSpec
from tollway.config.rest_openapi import OpenApiConfig
from tollway.config.rest_upstream import RestUpstreamConfig
from tollway.store import llm_models, providers, versions
from tollway.store.errors import SecretKeyError
from tollway.store.metering_schema import ServiceRecording
from tollway.store.schema import (
    ApiKey,
    App,
    ConfigState,
    LlmModel,
    PriceEntry,
    Provider,
    Service,
    ServiceVersion,
    Subscription,
    Team,
)

if TYPE_CHECKING:
    from tollway.store.database import Store

log = logging.getLogger("tollway.store")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TeamState:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class AppState:
    id: int
    team_id: int
    name: str
    # The MCP tools it may use: allowed (None: all), then denied; names or patterns.
    tools_allow: tuple[str, ...] | None = None
    tools_deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyState:
    id: int
    app_id: int
    team_id: int
    name: str
    prefix: str
    # The raw SHA-256 of the key (32 bytes).
    digest: bytes
    expires_at: datetime | None
    revoked_at: datetime | None
    # Model names and globs the key may use (None: no limit beyond its subscriptions).
    models: tuple[str, ...] | None
    # Client networks the key may be used from (None: anywhere).
    cidrs: tuple[Network, ...] | None

    def usable_at(self, now: datetime) -> bool:
        """Not revoked and not expired at `now` (a timezone-aware datetime)."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    number: int
    published_at: datetime | None
    # Kind ai: the public model names granted. Kind rest: the upstream.
    models: tuple[str, ...] | None
    upstream: RestUpstreamConfig | None
    # Kind ai: how kept conversations are fitted to its models, where it says (by model).
    context: Mapping[str, ContextConfig] | None = None
    # Kind prompt: the template, its input and output, and its model.
    prompt: PromptApiSpec | None = None
    # Kind mcp: the upstream MCP server.
    mcp: McpServerSpec | None = None
    # Kind rest: its OpenAPI document (its operations are MCP tools).
    openapi: OpenApiConfig | None = None


@dataclass(frozen=True, slots=True)
class ServiceState:
    id: int
    team_id: int
    name: str
    kind: str
    visibility: str
    approval: str
    route_prefix: str
    # The version that serves; None when no version is published.
    published: PublishedVersion | None
    # A second version serving `canary_weight` percent of the calls beside it (kind rest).
    canary: PublishedVersion | None = None
    canary_weight: int = 0
    # How its calls are recorded beyond their facts (None: the defaults, no bodies).
    recording: RecordingState | None = None


@dataclass(frozen=True, slots=True)
class RecordingState:
    """A service's recording settings (metering_schema.ServiceRecording)."""

    bodies: bool
    max_body_bytes: int
    retention_days: int | None
    redact: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    id: int
    app_id: int
    service_id: int
    # pending, approved, rejected, cancelled or revoked: the data plane's 403 says which.
    status: str


@dataclass(frozen=True, slots=True)
class ControlPlaneState:
    version: int
    teams: Mapping[int, TeamState]
    apps: Mapping[int, AppState]
    # Raw SHA-256 digest -> key; revoked and expired keys included (they answer 401).
    keys: Mapping[bytes, KeyState]
    services: Mapping[int, ServiceState]
    # (app id, service id) -> the subscription, whatever its status.
    subscriptions: Mapping[tuple[int, int], SubscriptionState]
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    catalog: Mapping[str, CatalogEntryConfig]

    def gateway_config(self) -> GatewayConfig:
        """Providers, models and prices as a GatewayConfig, for the existing compiler."""
        return GatewayConfig(
            providers=dict(self.providers), models=dict(self.models), catalog=dict(self.catalog)
        )

    def subscription(self, app_id: int, service_id: int) -> SubscriptionState | None:
        return self.subscriptions.get((app_id, service_id))


def load(session: Session, store: Store) -> ControlPlaneState:
    """Reads everything in the session's one transaction (a consistent view)."""
    version = session.scalars(select(ConfigState.version).where(ConfigState.id == 1)).one()
    teams = {t.id: TeamState(t.id, t.name) for t in session.scalars(select(Team))}
    app_rows = {a.id: _app(a) for a in session.scalars(select(App))}
    keys: dict[bytes, KeyState] = {}
    for key in session.scalars(select(ApiKey)):
        app = app_rows[key.app_id]
        digest = bytes.fromhex(key.digest)
        keys[digest] = KeyState(
            id=key.id,
            app_id=key.app_id,
            team_id=app.team_id,
            name=key.name,
            prefix=key.prefix,
            digest=digest,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            models=tuple(key.allowed_models) if key.allowed_models is not None else None,
            cidrs=tuple(ipaddress.ip_network(c, strict=False) for c in key.allowed_cidrs)
            if key.allowed_cidrs is not None
            else None,
        )
    serving: dict[int, ServiceVersion] = {}
    canaries: dict[int, ServiceVersion] = {}
    for row in session.scalars(
        select(ServiceVersion).where(ServiceVersion.status.in_(("published", "canary")))
    ):
        (serving if row.status == "published" else canaries)[row.service_id] = row
    recordings = {
        r.service_id: RecordingState(
            r.bodies, r.max_body_bytes, r.retention_days, tuple(r.redact or ())
        )
        for r in session.scalars(select(ServiceRecording))
    }
    service_rows: dict[int, ServiceState] = {}
    for service in session.scalars(select(Service)):
        published = _serving(serving.get(service.id), store)
        canary_row = canaries.get(service.id)
        service_rows[service.id] = ServiceState(
            id=service.id,
            team_id=service.team_id,
            name=service.name,
            kind=service.kind,
            visibility=service.visibility,
            approval=service.approval,
            route_prefix=service.route_prefix,
            published=published,
            canary=_serving(canary_row, store),
            canary_weight=(canary_row.traffic_weight or 0) if canary_row is not None else 0,
            recording=recordings.get(service.id),
        )
    subscriptions = {
        (s.app_id, s.service_id): SubscriptionState(s.id, s.app_id, s.service_id, s.status)
        for s in session.scalars(select(Subscription))
    }
    provider_configs = {
        p.name: providers.config(store, p, with_secrets=True)
        for p in session.scalars(select(Provider).order_by(Provider.id))
    }
    model_configs = {
        m.name: llm_models.config(session, m)
        for m in session.scalars(select(LlmModel).order_by(LlmModel.id))
    }
    catalog = {
        e.model: llm_models.price_config(e)
        for e in session.scalars(select(PriceEntry).order_by(PriceEntry.id))
    }
    return ControlPlaneState(
        version=int(version),
        teams=MappingProxyType(teams),
        apps=MappingProxyType(app_rows),
        keys=MappingProxyType(keys),
        services=MappingProxyType(service_rows),
        subscriptions=MappingProxyType(subscriptions),
        providers=MappingProxyType(provider_configs),
        models=MappingProxyType(model_configs),
        catalog=MappingProxyType(catalog),
    )


def _app(row: App) -> AppState:
    tools = row.tools or {}
    allow = tools.get("allow")
    return AppState(
        row.id,
        row.team_id,
        row.name,
        tuple(allow) if allow is not None else None,
        tuple(tools.get("deny") or ()),
    )


def _serving(row: ServiceVersion | None, store: Store) -> PublishedVersion | None:
    if row is None:
        return None
    spec = ServiceSpec.model_validate(row.spec)
    if spec.mcp is not None and spec.mcp.sealed_token is not None:
        try:
            spec = spec.model_copy(update={"mcp": versions.opened(spec.mcp, store)})
        except SecretKeyError as exc:
            # The server then refuses each call, saying why; the rest of the store serves.
            log.error("the MCP token of service version %d cannot be opened: %s", row.id, exc)
    return PublishedVersion(
        number=row.number,
        published_at=row.published_at,
        models=tuple(spec.models) if spec.models is not None else None,
        upstream=spec.upstream,
        context=dict(spec.context) if spec.context else None,  # pickled to the workers
        prompt=spec.prompt,
        mcp=spec.mcp,
        openapi=spec.openapi,
    )
