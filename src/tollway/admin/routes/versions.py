"""/services/{id}/versions and the lifecycle: publish, deprecate, retire, rollback, canary.

Versions are the owning team's business: its members read them, its team admins change
them. Other teams see the serving version through the catalog.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import Field, ValidationError

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.mcp_tools import fingerprints_of
from tollway.admin.routes.prompt_apis import tests_gate
from tollway.admin.schemas import MAX_ID, After, Body, Id, Limit, Number, Out, Page, Text
from tollway.config.entities import SPEC_FIELDS, ContextConfig, ServiceSpec, VersionStatus
from tollway.config.fields import ModelRef
from tollway.config.mcp_server import McpServerSpec
from tollway.config.prompt_api import PromptApiSpec
from tollway.config.rest_openapi import OpenApiConfig
from tollway.config.rest_upstream import RestUpstreamConfig
from tollway.store import services, versions
from tollway.store.database import Tx
from tollway.store.schema import Service, ServiceVersion
from tollway.store.validation import invalid_from

router = APIRouter(tags=["services"])


class VersionIn(ServiceSpec):
    """kind ai: `models` (and optionally `context`, by model); kind rest: `upstream`; kind
    prompt: `prompt`."""

    notes: Text = ""


class VersionPatch(Body):
    """A draft's content: given fields replace the draft's."""

    models: list[ModelRef] | None = None
    upstream: RestUpstreamConfig | None = None
    openapi: OpenApiConfig | None = None
    context: dict[ModelRef, ContextConfig] | None = None
    prompt: PromptApiSpec | None = None
    mcp: McpServerSpec | None = None
    notes: Text | None = None


class RollbackIn(Body):
    version: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="the (deprecated) version to serve again; default: the one published "
        "before the current one",
    )


class CanaryIn(Body):
    weight: int = Field(
        ge=0,
        le=100,
        description="percentage of the service's calls the canary takes: 0 serves only calls "
        "that ask for its version (x-tollway-version), 100 every call (a blue-green switch)",
    )
    override_failed_tests: bool = Field(
        False, description="prompt APIs: start it although test cases fail (audited)"
    )


class VersionOut(Out):
    service_id: int
    number: int
    status: str
    weight: int | None = Field(
        None, description="status canary: the percentage of the service's calls it takes"
    )
    models: list[str] | None
    upstream: RestUpstreamConfig | None
    openapi: OpenApiConfig | None = None
    context: dict[str, ContextConfig] | None = None
    prompt: PromptApiSpec | None = None
    mcp: McpServerSpec | None = None
    notes: str
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    revision: int


def version_out(version: ServiceVersion) -> VersionOut:
    spec = versions.spec_of(version)
    return VersionOut(
        service_id=version.service_id,
        number=version.number,
        status=version.status,
        weight=version.traffic_weight if version.status == "canary" else None,
        models=spec.models,
        upstream=spec.upstream,
        openapi=spec.openapi,
        context=spec.context,
        prompt=spec.prompt,
        mcp=spec.mcp,
        notes=version.notes,
        published_at=version.published_at,
        created_at=version.created_at,
        updated_at=version.updated_at,
        revision=version.revision,
    )


def _owner_reads(ctx: Ctx, service: Service) -> None:
    ctx.principal.require_service(
        service.team_id, service.visibility, None, "reading versions", service.id
    )
    ctx.principal.require_service(
        service.team_id, service.visibility, "viewer", "reading versions", service.id
    )


def _owner_changes(ctx: Ctx, service: Service, what: str) -> None:
    ctx.principal.require_service(
        service.team_id, service.visibility, "team_admin", what, service.id
    )


@router.get(
    "/services/{service_id}/versions",
    response_model=Page[VersionOut],
    summary="List a service's versions",
)
def list_versions(
    service_id: Id,
    ctx: Ctx,
    status: VersionStatus | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[VersionOut]:
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        _owner_reads(ctx, service)
        found = versions.listing(session, service.id, status=status, after=after, limit=limit)
        return Page(items=[version_out(v) for v in found.items], next_after=found.next_after)


@router.post(
    "/services/{service_id}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a draft version",
)
def create_version(service_id: Id, body: VersionIn, ctx: Ctx, response: Response) -> VersionOut:
    spec = ServiceSpec.taken_from(body)
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        _owner_changes(ctx, service, "creating versions")
        version = versions.create(tx, service, spec, notes=body.notes)
    response.headers["Location"] = f"/admin/v1/services/{service_id}/versions/{version.number}"
    tag(response, version.revision)
    return version_out(version)


@router.get(
    "/services/{service_id}/versions/{number}", response_model=VersionOut, summary="Read a version"
)
def get_version(service_id: Id, number: Number, ctx: Ctx, response: Response) -> VersionOut:
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        _owner_reads(ctx, service)
        version = versions.get(session, service.id, number)
    tag(response, version.revision)
    return version_out(version)


@router.patch(
    "/services/{service_id}/versions/{number}",
    response_model=VersionOut,
    summary="Change a draft",
)
def update_version(
    service_id: Id,
    number: Number,
    body: VersionPatch,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch,
) -> VersionOut:
    given = body.model_fields_set
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        _owner_changes(ctx, service, "changing versions")
        version = versions.get(tx.session, service.id, number)
        spec = None
        fields = SPEC_FIELDS
        if given & set(fields):
            current = versions.spec_of(version).model_dump()
            merged = current | {f: getattr(body, f) for f in fields if f in given}
            try:
                spec = ServiceSpec.model_validate(merged)
            except ValidationError as exc:
                raise invalid_from(exc) from None
        version = versions.update(
            tx, service, version, spec=spec, notes=body.notes, expected_revision=if_match
        )
    tag(response, version.revision)
    return version_out(version)


@router.delete(
    "/services/{service_id}/versions/{number}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a draft",
)
def delete_version(service_id: Id, number: Number, ctx: Ctx, if_match: IfMatch) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        _owner_changes(ctx, service, "deleting versions")
        versions.delete(
            tx, service, versions.get(tx.session, service.id, number), expected_revision=if_match
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _lifecycle(
    ctx: Ctx,
    service_id: int,
    number: int,
    action: str,
    if_match: int | None,
    overridden: dict[str, Any] | None = None,
    tools: dict[str, str] | None = None,
) -> VersionOut:
    steps = {
        "publish": (versions.publish, "publishing versions"),
        "deprecate": (versions.deprecate, "deprecating versions"),
        "retire": (versions.retire, "retiring versions"),
    }
    step, what = steps[action]
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        _owner_changes(ctx, service, what)
        version = versions.get(tx.session, service.id, number)
        if tools is not None and version.status == "draft":
            # An MCP service's tools as its server describes them now: what is approved.
            version.spec = {**version.spec, "mcp": {**version.spec["mcp"], "tools": tools}}
        version = step(tx, service, version, expected_revision=if_match)
        if overridden:
            _audit_override(tx, service, number, overridden)
    return version_out(version)


def _audit_override(tx: Tx, service: Service, number: int, failed: dict[str, Any]) -> None:
    tx.audit(
        "override_failed_tests",
        "service",
        services.label(tx.session, service),
        entity_id=service.id,
        team_id=service.team_id,
        changes={"version": number, "failed": failed},
    )


class PublishIn(Body):
    override_failed_tests: bool = Field(
        False,
        description="prompt APIs: publish although test cases fail (a team admin's decision, "
        "recorded in the audit log with the failures)",
    )


def _tested(
    ctx: Ctx,
    service_id: int,
    number: int,
    override: bool,
    what: str,
    before: tuple[str, ...] = ("draft", "deprecated", "canary"),
) -> tuple[int, dict[str, Any]]:
    """A prompt API's version's test cases, run before it serves (when its status is one of
    `before`): the revision they ran on (the change is made on that one, or refused) and the
    failures overridden."""
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        _owner_changes(ctx, service, what)
        version = versions.get(session, service.id, number)
        return version.revision, tests_gate(ctx, service, version, override, before)


@router.post(
    "/services/{service_id}/versions/{number}/publish",
    response_model=VersionOut,
    summary="Publish a draft: it serves from now on",
)
def publish(
    service_id: Id,
    number: Number,
    ctx: Ctx,
    if_match: IfMatch,
    body: PublishIn | None = None,
) -> VersionOut:
    """Freezes the draft; the version that served until now becomes deprecated. A prompt API's
    version passes its test cases first (409 naming the failures, unless overridden)."""
    override = body.override_failed_tests if body is not None else False
    tested, failed = _tested(ctx, service_id, number, override, "publishing versions")
    expected = if_match if if_match is not None else tested
    return _lifecycle(
        ctx, service_id, number, "publish", expected, failed, _tools_now(ctx, service_id, number)
    )


def _tools_now(ctx: Ctx, service_id: int, number: int) -> dict[str, str] | None:
    """An MCP service's draft: its server's tools now, fingerprinted (None for any other)."""
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        version = versions.get(session, service.id, number)
        spec = versions.spec_of(version).mcp
        if service.kind != "mcp" or spec is None or version.status != "draft":
            return None
    return fingerprints_of(versions.opened(spec, ctx.store))


@router.post(
    "/services/{service_id}/versions/{number}/deprecate",
    response_model=VersionOut,
    summary="Stop a published version serving",
)
def deprecate(service_id: Id, number: Number, ctx: Ctx, if_match: IfMatch) -> VersionOut:
    return _lifecycle(ctx, service_id, number, "deprecate", if_match)


@router.post(
    "/services/{service_id}/versions/{number}/retire",
    response_model=VersionOut,
    summary="Retire a version for good",
)
def retire(service_id: Id, number: Number, ctx: Ctx, if_match: IfMatch) -> VersionOut:
    return _lifecycle(ctx, service_id, number, "retire", if_match)


@router.post(
    "/services/{service_id}/versions/{number}/canary",
    response_model=VersionOut,
    summary="Serve a version as the canary, or change the canary's weight",
)
def canary(
    service_id: Id, number: Number, body: CanaryIn, ctx: Ctx, if_match: IfMatch
) -> VersionOut:
    """A draft (frozen by this) or a deprecated version of a rest service, or of a prompt API
    (an A/B test), serves `weight` percent of the calls beside the published version. Publish
    it to promote it (every call, the published version deprecated); deprecate it to end the
    canary. A prompt API's version passes its test cases first."""
    # A canary's weight changes without its tests running again.
    tested, failed = _tested(
        ctx,
        service_id,
        number,
        body.override_failed_tests,
        "running canaries",
        ("draft", "deprecated"),
    )
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        _owner_changes(ctx, service, "running canaries")
        version = versions.get(tx.session, service.id, number)
        version = versions.start_canary(
            tx,
            service,
            version,
            body.weight,
            expected_revision=if_match if if_match is not None else tested,
        )
        if failed:
            _audit_override(tx, service, number, failed)
    return version_out(version)


@router.post(
    "/services/{service_id}/rollback",
    response_model=VersionOut,
    summary="Serve an earlier published version again",
)
def rollback(service_id: Id, body: RollbackIn, ctx: Ctx) -> VersionOut:
    """One call: the chosen deprecated version serves, the current one is deprecated."""
    with ctx.store.write(ctx.principal.actor) as tx:
        service = services.get(tx.session, service_id)
        _owner_changes(ctx, service, "rolling back")
        version = versions.rollback(tx, service, body.version)
    return version_out(version)
