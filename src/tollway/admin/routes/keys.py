"""/apps/{id}/keys: an app's API keys. A new key is in the creating answer, once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import Field, StringConstraints, field_validator

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.schemas import After, Body, Id, Label, Limit, Moment, Out, Page
from tollway.config.entities import normalise_network
from tollway.store import apps, keys
from tollway.store.schema import ApiKey

router = APIRouter(tags=["keys"])

ModelGlob = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Cidr = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _cidrs(value: list[str] | None) -> list[str] | None:
    return None if value is None else [normalise_network(v) for v in value]


class KeyIn(Body):
    name: Label
    models: list[ModelGlob] | None = Field(
        None, max_length=100, description="model names or globs (gpt-4o*); default: any"
    )
    cidrs: list[Cidr] | None = Field(
        None, max_length=100, description="client networks (10.0.0.0/8); default: any"
    )
    expires_at: Moment | None = None

    @field_validator("cidrs")
    @classmethod
    def _check(cls, value: list[str] | None) -> list[str] | None:
        return _cidrs(value)


class KeyPatch(Body):
    """Give a field to change it; null lifts a limit."""

    name: Label | None = None
    models: list[ModelGlob] | None = Field(None, max_length=100)
    cidrs: list[Cidr] | None = Field(None, max_length=100)
    expires_at: Moment | None = None

    @field_validator("cidrs")
    @classmethod
    def _check(cls, value: list[str] | None) -> list[str] | None:
        return _cidrs(value)


class RotateIn(Body):
    overlap_s: int = Field(
        3600, ge=0, le=30 * 86400, description="how long the old key keeps working"
    )
    expires_at: Moment | None = Field(None, description="when the new key expires")


class KeyOut(Out):
    id: int
    app_id: int
    name: str
    prefix: str
    models: list[str] | None
    cidrs: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_from: int | None
    created_at: datetime
    updated_at: datetime
    revision: int


class NewKey(KeyOut):
    key: str = Field(description="the key itself: shown this once, never again")


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        app_id=key.app_id,
        name=key.name,
        prefix=key.prefix,
        models=key.allowed_models,
        cidrs=key.allowed_cidrs,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        rotated_from=key.rotated_from_id,
        created_at=key.created_at,
        updated_at=key.updated_at,
        revision=key.revision,
    )


@router.get("/apps/{app_id}/keys", response_model=Page[KeyOut], summary="List an app's keys")
def list_keys(
    app_id: Id, ctx: Ctx, include_revoked: bool = True, after: After = None, limit: Limit = 50
) -> Page[KeyOut]:
    with ctx.store.read() as session:
        app = apps.get(session, app_id)
        ctx.principal.require_team(app.team_id, "viewer", "reading keys", "app", app_id)
        found = keys.listing(
            session, app.id, include_revoked=include_revoked, after=after, limit=limit
        )
        return Page(items=[key_out(k) for k in found.items], next_after=found.next_after)


@router.post(
    "/apps/{app_id}/keys",
    response_model=NewKey,
    status_code=status.HTTP_201_CREATED,
    summary="Create a key",
)
def create_key(app_id: Id, body: KeyIn, ctx: Ctx, response: Response) -> NewKey:
    """The key (tw-...) is in this answer only; the store keeps its SHA-256."""
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "creating keys", "app", app_id)
        key, secret = keys.create(
            tx, app, body.name, models=body.models, cidrs=body.cidrs, expires_at=body.expires_at
        )
    response.headers["Location"] = f"/admin/v1/apps/{app_id}/keys/{key.id}"
    tag(response, key.revision)
    return NewKey(**key_out(key).model_dump(), key=secret)


@router.get("/apps/{app_id}/keys/{key_id}", response_model=KeyOut, summary="Read a key")
def get_key(app_id: Id, key_id: Id, ctx: Ctx, response: Response) -> KeyOut:
    with ctx.store.read() as session:
        app = apps.get(session, app_id)
        ctx.principal.require_team(app.team_id, "viewer", "reading keys", "app", app_id)
        key = keys.get(session, app.id, key_id)
    tag(response, key.revision)
    return key_out(key)


@router.patch("/apps/{app_id}/keys/{key_id}", response_model=KeyOut, summary="Change a key")
def update_key(
    app_id: Id, key_id: Id, body: KeyPatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> KeyOut:
    given = body.model_fields_set
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "changing keys", "app", app_id)
        key = keys.get(tx.session, app.id, key_id)
        changes: dict[str, object] = {}
        for field in ("models", "cidrs", "expires_at"):
            if field in given:
                changes[field] = getattr(body, field)
        key = keys.update(
            tx,
            app,
            key,
            expected_revision=if_match,
            name=body.name,
            **changes,  # type: ignore[arg-type]
        )
    tag(response, key.revision)
    return key_out(key)


@router.post("/apps/{app_id}/keys/{key_id}/revoke", response_model=KeyOut, summary="Revoke a key")
def revoke_key(app_id: Id, key_id: Id, ctx: Ctx, response: Response, if_match: IfMatch) -> KeyOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "revoking keys", "app", app_id)
        key = keys.revoke(tx, app, keys.get(tx.session, app.id, key_id), expected_revision=if_match)
    tag(response, key.revision)
    return key_out(key)


@router.post(
    "/apps/{app_id}/keys/{key_id}/rotate",
    response_model=NewKey,
    status_code=status.HTTP_201_CREATED,
    summary="Rotate a key",
)
def rotate_key(
    app_id: Id, key_id: Id, body: RotateIn, ctx: Ctx, response: Response, if_match: IfMatch
) -> NewKey:
    """A new key with the same settings; the old one keeps working for `overlap_s` seconds
    (0: it is revoked at once)."""
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "rotating keys", "app", app_id)
        key = keys.get(tx.session, app.id, key_id)
        new, secret = keys.rotate(
            tx,
            app,
            key,
            overlap=timedelta(seconds=body.overlap_s),
            expires_at=body.expires_at,
            expected_revision=if_match,
        )
    response.headers["Location"] = f"/admin/v1/apps/{app_id}/keys/{new.id}"
    tag(response, new.revision)
    return NewKey(**key_out(new).model_dump(), key=secret)


@router.delete(
    "/apps/{app_id}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a key (revoking keeps its record)",
)
def delete_key(app_id: Id, key_id: Id, ctx: Ctx) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        app = apps.get(tx.session, app_id)
        ctx.principal.require_team(app.team_id, "developer", "deleting keys", "app", app_id)
        keys.delete(tx, app, keys.get(tx.session, app.id, key_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
