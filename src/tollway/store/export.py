"""The store's whole state as the declarative file's shape (`tollway export`).

What comes out validates as a `GatewayConfig` and `tollway import`/`apply` read it back.
Secrets (provider credentials, password hashes) are left out unless asked for; keys are
written as their SHA-256, which is all the store has of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.store import llm_models, providers, versions
from tollway.store.database import Store
from tollway.store.schema import (
    ApiKey,
    App,
    LlmModel,
    PriceEntry,
    Provider,
    Service,
    ServiceVersion,
    Subscription,
    Team,
    TeamMember,
    User,
)


def export_config(store: Store, *, include_secrets: bool = False) -> dict[str, Any]:
    """A YAML-ready mapping of everything in the store, at one consistent version."""
    with store.read(consistent=True) as session:
        out: dict[str, Any] = {}
        out["providers"] = _providers(store, session, include_secrets)
        out["models"] = {
            m.name: llm_models.config(session, m).model_dump(mode="json", exclude_defaults=True)
            for m in session.scalars(select(LlmModel).order_by(LlmModel.id))
        }
        out["catalog"] = {
            e.model: llm_models.price_config(e).model_dump(mode="json", exclude_none=True)
            for e in session.scalars(select(PriceEntry).order_by(PriceEntry.id))
        }
        out["users"] = _users(session, include_secrets)
        team_names = {t.id: t.name for t in session.scalars(select(Team))}
        out["teams"] = _teams(session)
        out["apps"] = _apps(session, team_names)
        out["services"] = _services(store, session, team_names, include_secrets)
        out["subscriptions"] = _subscriptions(session, team_names)
    return {name: section for name, section in out.items() if section}


def _providers(store: Store, session: Session, include_secrets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in session.scalars(select(Provider).order_by(Provider.id)):
        config = providers.config(store, row, with_secrets=include_secrets)
        data = {"type": config.type} | config.model_dump(
            mode="json", exclude_defaults=True, exclude={"credentials", "type"}
        )
        if include_secrets and config.credentials is not None:
            data["credentials"] = {
                name: getattr(config.credentials, name).get_secret_value()
                for name in config.credentials.names()
            }
        out[row.name] = data
    return out


def _users(session: Session, include_secrets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for user in session.scalars(select(User).order_by(User.id)):
        data: dict[str, Any] = {"platform_role": user.platform_role}
        if user.display_name:
            data["display_name"] = user.display_name
        if user.email:
            data["email"] = user.email
        if user.disabled:
            data["disabled"] = True
        if include_secrets and user.password_hash:
            data["password_hash"] = user.password_hash
        out[user.name] = data
    return out


def _teams(session: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for team in session.scalars(select(Team).order_by(Team.id)):
        members = session.execute(
            select(User.name, TeamMember.role)
            .join(TeamMember, TeamMember.user_id == User.id)
            .where(TeamMember.team_id == team.id)
            .order_by(User.name)
        )
        data: dict[str, Any] = {}
        if team.description:
            data["description"] = team.description
        roles = {name: role for name, role in members}
        if roles:
            data["members"] = roles
        out[team.name] = data
    return out


def _apps(session: Session, team_names: dict[int, str]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for app in session.scalars(select(App).order_by(App.id)):
        data: dict[str, Any] = {}
        if app.description:
            data["description"] = app.description
        if app.tools is not None:
            data["tools"] = app.tools
        found = [
            _key(key)
            for key in session.scalars(
                select(ApiKey).where(ApiKey.app_id == app.id).order_by(ApiKey.id)
            )
        ]
        if found:
            data["keys"] = found
        out.setdefault(team_names[app.team_id], {})[app.name] = data
    return out


def _key(key: ApiKey) -> dict[str, Any]:
    data: dict[str, Any] = {"name": key.name, "key_sha256": key.digest, "prefix": key.prefix}
    if key.allowed_models is not None:
        data["models"] = list(key.allowed_models)
    if key.allowed_cidrs is not None:
        data["cidrs"] = list(key.allowed_cidrs)
    if key.expires_at is not None:
        data["expires_at"] = key.expires_at.isoformat()
    if key.revoked_at is not None:
        data["revoked_at"] = key.revoked_at.isoformat()
    return data


def _services(
    store: Store, session: Session, team_names: dict[int, str], include_secrets: bool
) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for service in session.scalars(select(Service).order_by(Service.id)):
        data: dict[str, Any] = {
            "kind": service.kind,
            "route_prefix": service.route_prefix,
            "visibility": service.visibility,
            "approval": service.approval,
        }
        if service.description:
            data["description"] = service.description
        numbered: dict[int, Any] = {}
        for version in session.scalars(
            select(ServiceVersion)
            .where(ServiceVersion.service_id == service.id)
            .order_by(ServiceVersion.number)
        ):
            spec = _version_spec(store, version, include_secrets)
            entry: dict[str, Any] = {"status": version.status, **spec}
            if version.status == "canary":
                entry["weight"] = version.traffic_weight or 0
            if version.notes:
                entry["notes"] = version.notes
            numbered[version.number] = entry
        if numbered:
            data["versions"] = numbered
        out.setdefault(team_names[service.team_id], {})[service.name] = data
    return out


def _subscriptions(session: Session, team_names: dict[int, str]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Subscription, App, Service)
        .join(App, App.id == Subscription.app_id)
        .join(Service, Service.id == Subscription.service_id)
        .order_by(Subscription.id)
    )
    return [
        {
            "app": f"{team_names[app.team_id]}/{app.name}",
            "service": f"{team_names[service.team_id]}/{service.name}",
            "status": subscription.status,
        }
        for subscription, app, service in rows
    ]


def _version_spec(store: Store, version: ServiceVersion, include_secrets: bool) -> dict[str, Any]:
    """A version's spec as a file gives it: an MCP server's sealed token (which only this
    store's secret key opens) left out, or given opened with the secrets."""
    spec = versions.spec_of(version)
    mcp = spec.mcp
    if mcp is not None and mcp.sealed_token is not None:
        mcp = versions.opened(mcp, store) if include_secrets else mcp
        spec = spec.model_copy(update={"mcp": mcp.model_copy(update={"sealed_token": None})})
    return spec.model_dump(mode="json", exclude_none=True)
