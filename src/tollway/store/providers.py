"""Providers: the declarative `ProviderConfig`, with credentials sealed at rest.

The settings are kept as the config model's JSON (without credentials), so the store holds
exactly what a YAML file can say. Credentials are encrypted with the store's secret key and
only ever leave the store decrypted in `load_state` (for the data plane) and in exports that
ask for secrets.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tollway.config.models import ProviderConfig
from tollway.store.audit import diff
from tollway.store.database import Store, Tx
from tollway.store.errors import Conflict
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import Deployment, LlmModel, Provider
from tollway.store.validation import invalid_from


def find(session: Session, name: str) -> Provider | None:
    return session.scalars(select(Provider).where(Provider.name == name)).one_or_none()


def get(session: Session, provider_id: int) -> Provider:
    return by_id(session, Provider, provider_id, "provider")


def listing(
    session: Session,
    *,
    type: str | None = None,
    name: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[Provider]:
    query: Select[Provider] = select(Provider)
    if type is not None:
        query = query.where(Provider.type == type)
    if name is not None:
        query = query.where(Provider.name == name)
    return page(session, query, Provider.id, after=after, limit=limit)


def credential_names(store: Store, provider: Provider) -> list[str]:
    """Which credentials are set (never their values)."""
    if provider.sealed_credentials is None:
        return []
    return sorted(store.unseal(provider.sealed_credentials))


def config(store: Store, provider: Provider, *, with_secrets: bool = False) -> ProviderConfig:
    """The provider as its config model; credentials only when asked for."""
    data: dict[str, Any] = dict(provider.settings)
    if with_secrets and provider.sealed_credentials is not None:
        data["credentials"] = store.unseal(provider.sealed_credentials)
    return ProviderConfig.model_validate(data)


def settings_of(value: ProviderConfig) -> dict[str, Any]:
    return value.model_dump(mode="json", exclude={"credentials"}, exclude_defaults=True)


def _sealed(store: Store, value: ProviderConfig) -> str | None:
    if value.credentials is None or not value.credentials.names():
        return None
    return store.seal(
        {
            name: getattr(value.credentials, name).get_secret_value()
            for name in value.credentials.names()
        }
    )


def _audit_view(value: ProviderConfig) -> dict[str, Any]:
    view = settings_of(value)
    if value.credentials is not None:
        view["credentials_set"] = value.credentials.names()
    return view


def create(tx: Tx, name: str, value: ProviderConfig) -> Provider:
    if find(tx.session, name) is not None:
        raise Conflict(f"a provider named {name!r} already exists", "name")
    provider = Provider(
        name=name,
        type=value.type,
        settings=settings_of(value),
        sealed_credentials=_sealed(tx.store, value),
    )
    tx.session.add(provider)
    tx.session.flush()
    tx.audit("create", "provider", name, entity_id=provider.id, changes=_audit_view(value))
    return provider


def replace(
    tx: Tx,
    provider: Provider,
    value: ProviderConfig,
    *,
    keep_credentials: bool,
    expected_revision: int | None = None,
) -> Provider:
    """Replaces the provider's settings. With `keep_credentials`, the stored credentials stay
    (the new settings are checked together with them); otherwise `value`'s replace them."""
    check_revision(provider, expected_revision, f"provider {provider.name}")
    before = config(tx.store, provider, with_secrets=True)
    if keep_credentials and before.credentials is not None:
        data = value.model_dump() | {"credentials": before.credentials.model_dump()}
        try:
            value = ProviderConfig.model_validate(data)
        except ValidationError as exc:
            raise invalid_from(exc) from None
    settings = settings_of(value)
    sealed = _sealed(tx.store, value)
    secrets_changed = secret_values(before) != secret_values(value)
    changes = diff(settings_of(before), settings)
    if secrets_changed:
        changes["credentials_set"] = {
            "from": before.credentials.names() if before.credentials else [],
            "to": value.credentials.names() if value.credentials else [],
        }
    if changes:
        provider.type = value.type
        provider.settings = settings
        if secrets_changed:
            provider.sealed_credentials = sealed
        tx.session.flush()
        tx.audit("update", "provider", provider.name, entity_id=provider.id, changes=changes)
    return provider


def secret_values(value: ProviderConfig) -> dict[str, str]:
    if value.credentials is None:
        return {}
    return {
        name: getattr(value.credentials, name).get_secret_value()
        for name in value.credentials.names()
    }


def delete(tx: Tx, provider: Provider, *, expected_revision: int | None = None) -> None:
    check_revision(provider, expected_revision, f"provider {provider.name}")
    users = sorted(
        tx.session.scalars(
            select(LlmModel.name)
            .join(Deployment, Deployment.model_id == LlmModel.id)
            .where(Deployment.provider_id == provider.id)
            .distinct()
        )
    )
    if users:
        raise Conflict(
            f"provider {provider.name!r} serves models {', '.join(users)}: "
            "change their deployments first"
        )
    tx.audit(
        "delete", "provider", provider.name, entity_id=provider.id, changes={"type": provider.type}
    )
    tx.session.delete(provider)
    tx.session.flush()
