"""/providers: upstreams and their credentials (platform admins only).

The body is the YAML file's provider section plus a name. Credentials are write-only: an
answer says which are set, never their values. A PUT without `credentials` keeps the stored
ones; `"credentials": {}` removes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import Field, StringConstraints

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.schemas import After, Id, Limit, Out, Page
from tollway.config.models import ProviderConfig
from tollway.store import providers
from tollway.store.database import Store
from tollway.store.errors import Conflict
from tollway.store.schema import Provider

router = APIRouter(tags=["providers"])

ProviderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
ProviderType = Annotated[str, StringConstraints(max_length=32)]


class ProviderIn(ProviderConfig):
    """A provider: a name, and the fields of a YAML `providers` entry."""

    name: ProviderName


class ProviderOut(Out):
    id: int
    name: str
    settings: ProviderConfig = Field(description="the provider's settings (no credentials)")
    credentials_set: list[str] = Field(description="names of the stored credentials")
    created_at: datetime
    updated_at: datetime
    revision: int


def provider_out(store: Store, provider: Provider) -> ProviderOut:
    return ProviderOut(
        id=provider.id,
        name=provider.name,
        settings=providers.config(store, provider),
        credentials_set=providers.credential_names(store, provider),
        created_at=provider.created_at,
        updated_at=provider.updated_at,
        revision=provider.revision,
    )


def _config(body: ProviderIn) -> ProviderConfig:
    return ProviderConfig.model_validate(body.model_dump(exclude={"name"}))


@router.get("/providers", response_model=Page[ProviderOut], summary="List providers")
def list_providers(
    ctx: Ctx,
    type: ProviderType | None = None,
    name: ProviderName | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[ProviderOut]:
    ctx.principal.require_admin("read providers")
    with ctx.store.read() as session:
        found = providers.listing(session, type=type, name=name, after=after, limit=limit)
        return Page(
            items=[provider_out(ctx.store, p) for p in found.items], next_after=found.next_after
        )


@router.post(
    "/providers",
    response_model=ProviderOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a provider",
)
def create_provider(body: ProviderIn, ctx: Ctx, response: Response) -> ProviderOut:
    ctx.principal.require_admin("create providers")
    with ctx.store.write(ctx.principal.actor) as tx:
        provider = providers.create(tx, body.name, _config(body))
        out = provider_out(ctx.store, provider)
    response.headers["Location"] = f"/admin/v1/providers/{provider.id}"
    tag(response, provider.revision)
    return out


@router.get("/providers/{provider_id}", response_model=ProviderOut, summary="Read a provider")
def get_provider(provider_id: Id, ctx: Ctx, response: Response) -> ProviderOut:
    ctx.principal.require_admin("read providers")
    with ctx.store.read() as session:
        provider = providers.get(session, provider_id)
        out = provider_out(ctx.store, provider)
    tag(response, provider.revision)
    return out


@router.put("/providers/{provider_id}", response_model=ProviderOut, summary="Replace a provider")
def replace_provider(
    provider_id: Id, body: ProviderIn, ctx: Ctx, response: Response, if_match: IfMatch
) -> ProviderOut:
    ctx.principal.require_admin("change providers")
    with ctx.store.write(ctx.principal.actor) as tx:
        provider = providers.get(tx.session, provider_id)
        if body.name != provider.name:
            if providers.find(tx.session, body.name) is not None:
                raise Conflict(f"a provider named {body.name!r} already exists", "name")
            provider.name = body.name
        provider = providers.replace(
            tx,
            provider,
            _config(body),
            keep_credentials="credentials" not in body.model_fields_set,
            expected_revision=if_match,
        )
        out = provider_out(ctx.store, provider)
    tag(response, provider.revision)
    return out


@router.delete(
    "/providers/{provider_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a provider no model uses",
)
def delete_provider(provider_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    ctx.principal.require_admin("delete providers")
    with ctx.store.write(ctx.principal.actor) as tx:
        providers.delete(tx, providers.get(tx.session, provider_id), expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
