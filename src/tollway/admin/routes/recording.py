"""/services/{id}/recording: how a service's calls are recorded (bodies, redaction,
retention), and /webhooks: where events (budget alerts, ...) are POSTed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, Field

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.schemas import After, Body, BodyId, Id, IdFilter, Label, Limit, Out, Page
from tollway.store import recording, services, teams
from tollway.store.errors import Invalid, NotFound
from tollway.store.metering_schema import Webhook

router = APIRouter(tags=["metering"])

Pattern = Annotated[str, Field(min_length=1, max_length=500)]


class RecordingIn(Body):
    bodies: bool = Field(
        False, description="record request and response bodies (redacted) with each call"
    )
    max_body_bytes: int = Field(
        recording.DEFAULT_MAX_BODY, ge=256, le=recording.MAX_BODY, description="kept per body"
    )
    retention_days: int | None = Field(
        None, ge=1, le=3650, description="days the service's records are kept (null: default)"
    )
    redact: list[Pattern] = Field(
        default_factory=list,
        max_length=50,
        description="regular expressions redacted from bodies, beside the built-in secrets",
    )


class RecordingOut(Out):
    service_id: int
    bodies: bool
    max_body_bytes: int
    retention_days: int | None
    redact: list[str]
    revision: int


@router.get(
    "/services/{service_id}/recording",
    response_model=RecordingOut,
    summary="How a service's calls are recorded",
)
def get_recording(service_id: Id, ctx: Ctx, response: Response) -> RecordingOut:
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        ctx.principal.require_team(
            service.team_id, "viewer", "reading recording", "service", service_id
        )
        row = recording.recording_of(session, service_id)
    if row is None:
        return RecordingOut(
            service_id=service_id,
            bodies=False,
            max_body_bytes=recording.DEFAULT_MAX_BODY,
            retention_days=None,
            redact=[],
            revision=0,
        )
    tag(response, row.revision)
    return RecordingOut(
        service_id=service_id,
        bodies=row.bodies,
        max_body_bytes=row.max_body_bytes,
        retention_days=row.retention_days,
        redact=list(row.redact),
        revision=row.revision,
    )


@router.put(
    "/services/{service_id}/recording",
    response_model=RecordingOut,
    summary="Set how a service's calls are recorded",
)
def put_recording(
    service_id: Id, body: RecordingIn, ctx: Ctx, response: Response, if_match: IfMatch
) -> RecordingOut:
    """Bodies are off by default; when on, each body is cut to `max_body_bytes` and
    redacted (the caller's and the provider's credentials, built-in secret patterns, and
    `redact`) before it leaves the worker. Takes effect like any change (within a second)."""
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        ctx.principal.require_team(
            service.team_id, "team_admin", "changing recording", "service", service_id
        )
        row = recording.set_recording(
            tx,
            service,
            bodies=body.bodies,
            max_body_bytes=body.max_body_bytes,
            retention_days=body.retention_days,
            redact=body.redact,
            expected_revision=if_match,
        )
    tag(response, row.revision)
    return RecordingOut(
        service_id=service_id,
        bodies=row.bodies,
        max_body_bytes=row.max_body_bytes,
        retention_days=row.retention_days,
        redact=list(row.redact),
        revision=row.revision,
    )


# -- webhooks --------------------------------------------------------------------------------


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value


Url = Annotated[str, Field(min_length=8, max_length=2000), AfterValidator(_web_url)]
Kind = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.*?\-]+$")]
Secret = Annotated[str, Field(min_length=16, max_length=500)]


class WebhookIn(Body):
    team_id: BodyId | None = Field(
        None, description="the team whose events it takes (null: every event; admins only)"
    )
    name: Label
    url: Url
    kinds: list[Kind] = Field(
        default_factory=lambda: ["budget*"],
        min_length=1,
        max_length=50,
        description="event kinds it takes, globs allowed (e.g. budget*)",
    )
    secret: Secret | None = Field(None, description="signs each delivery (HMAC-SHA256)")
    enabled: bool = True


class WebhookPatch(Body):
    name: Label | None = None
    url: Url | None = None
    kinds: list[Kind] | None = Field(None, min_length=1, max_length=50)
    secret: Secret | None = None
    clear_secret: bool = False
    enabled: bool | None = None


class WebhookOut(Out):
    id: int
    team_id: int | None
    name: str
    url: str
    kinds: list[str]
    enabled: bool
    signed: bool
    created_at: datetime
    updated_at: datetime
    revision: int


def webhook_out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        team_id=hook.team_id,
        name=hook.name,
        url=hook.url,
        kinds=list(hook.kinds),
        enabled=hook.enabled,
        signed=hook.sealed_secret is not None,
        created_at=hook.created_at,
        updated_at=hook.updated_at,
        revision=hook.revision,
    )


def _manage(ctx: Ctx, hook_team: int | None, what: str, key: object) -> None:
    if hook_team is None:
        if not ctx.principal.is_admin:
            raise NotFound("webhook", key)
        return
    ctx.principal.require_team(hook_team, "team_admin", what, "webhook", key)


@router.get("/webhooks", response_model=Page[WebhookOut], summary="List webhooks")
def list_webhooks(
    ctx: Ctx, team_id: IdFilter = None, after: After = None, limit: Limit = 50
) -> Page[WebhookOut]:
    """The webhooks of the teams you are team_admin of (every webhook for a platform admin,
    the platform's own included)."""
    principal = ctx.principal
    team_ids = None
    if not principal.is_admin:
        team_ids = [t for t in principal.roles if principal.has(t, "team_admin")]
    with ctx.store.read() as session:
        found = recording.webhooks(
            session, team_ids=team_ids, team_id=team_id, after=after, limit=limit
        )
        return Page(items=[webhook_out(h) for h in found.items], next_after=found.next_after)


@router.post(
    "/webhooks",
    response_model=WebhookOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook",
)
def create_webhook(body: WebhookIn, ctx: Ctx, response: Response) -> WebhookOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        if body.team_id is None:
            ctx.principal.require_admin("create platform webhooks")
        else:
            try:
                team = teams.get(tx.session, body.team_id)
            except NotFound:
                raise Invalid.one("team_id", f"unknown team {body.team_id}") from None
            ctx.principal.require_team(team.id, "team_admin", "creating webhooks", "team", team.id)
        hook = recording.create_webhook(
            tx,
            team_id=body.team_id,
            name=body.name,
            url=body.url,
            kinds=body.kinds,
            secret=body.secret,
            enabled=body.enabled,
        )
    response.headers["Location"] = f"/admin/v1/webhooks/{hook.id}"
    tag(response, hook.revision)
    return webhook_out(hook)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, summary="Read a webhook")
def get_webhook(webhook_id: Id, ctx: Ctx, response: Response) -> WebhookOut:
    with ctx.store.read() as session:
        hook = recording.get_webhook(session, webhook_id)
        _manage(ctx, hook.team_id, "reading webhooks", webhook_id)
    tag(response, hook.revision)
    return webhook_out(hook)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, summary="Change a webhook")
def update_webhook(
    webhook_id: Id, body: WebhookPatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> WebhookOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        hook = recording.get_webhook(tx.session, webhook_id)
        _manage(ctx, hook.team_id, "changing webhooks", webhook_id)
        hook = recording.update_webhook(
            tx,
            hook,
            expected_revision=if_match,
            name=body.name,
            url=body.url,
            kinds=body.kinds,
            secret=body.secret,
            clear_secret=body.clear_secret,
            enabled=body.enabled,
        )
    tag(response, hook.revision)
    return webhook_out(hook)


@router.delete(
    "/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a webhook"
)
def delete_webhook(webhook_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        hook = recording.get_webhook(tx.session, webhook_id)
        _manage(ctx, hook.team_id, "deleting webhooks", webhook_id)
        recording.delete_webhook(tx, hook, expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
