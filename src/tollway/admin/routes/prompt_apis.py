"""Prompt APIs in the admin API: the OpenAPI document of one (shown in the catalog, to whoever
may read the service) and of everything an app is subscribed to (its team's members); the
playground and the test cases of a version (its team's developers); and the gate that runs
a version's test cases before it serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.admin.auth import Ctx
from tollway.admin.prompt_runs import MAX_SAMPLES, Run, run_samples, run_tests
from tollway.admin.routes.apps import readable_app
from tollway.admin.routes.services import readable
from tollway.admin.schemas import Body, Id, Number, Out
from tollway.config.prompt_api import PromptApiSpec
from tollway.config.prompt_openapi import PromptApiEntry, document
from tollway.store import apps, services, versions
from tollway.store.errors import Conflict, Invalid, NotFound
from tollway.store.schema import Service, ServiceVersion, Subscription, Team

router = APIRouter(tags=["prompt apis"])


def entry_of(session: Session, service: Service) -> PromptApiEntry | None:
    """A prompt service's serving version, for its document (None: nothing serves)."""
    serving = services.published(session, service.id)
    if serving is None:
        return None
    spec = versions.spec_of(serving)
    if spec.prompt is None:
        return None
    team = session.get(Team, service.team_id)
    name = f"{team.name if team else service.team_id}/{service.name}"
    definition = spec.prompt.model_dump(mode="json", exclude_none=True)
    return PromptApiEntry(
        name, service.route_prefix, serving.number, definition, service.description
    )


@router.get(
    "/catalog/{service_id}/openapi.json",
    summary="The OpenAPI document of a prompt API or a REST service",
    response_model=dict[str, Any],
)
def prompt_api_document(service_id: Id, ctx: Ctx) -> dict[str, Any]:
    """A prompt API's document, made from its published version; a REST service's, as its
    published version gives it."""
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        readable(ctx, service)
        if service.kind == "rest":
            serving = services.published(session, service.id)
            given = versions.spec_of(serving).openapi if serving is not None else None
            if given is None:
                raise NotFound("OpenAPI document of service", service_id)
            return given.document
        if service.kind != "prompt":
            raise Invalid.one(
                "service_id", f"service {service.name!r} is not a prompt API or REST service"
            )
        entry = entry_of(session, service)
        if entry is None:
            raise NotFound("published version of service", service_id)
    return document([entry], f"Prompt API {entry.name}")


@router.get(
    "/apps/{app_id}/openapi.json",
    summary="The OpenAPI document of every prompt API an app is subscribed to",
    response_model=dict[str, Any],
)
def app_document(app_id: Id, ctx: Ctx) -> dict[str, Any]:
    with ctx.store.read() as session:
        app = apps.get(session, app_id)
        readable_app(ctx, app)
        approved = session.scalars(
            select(Service)
            .join(Subscription, Subscription.service_id == Service.id)
            .where(
                Subscription.app_id == app.id,
                Subscription.status == "approved",
                Service.kind == "prompt",
            )
            .order_by(Service.route_prefix)
        )
        entries = [e for e in (entry_of(session, s) for s in approved) if e is not None]
    return document(entries, f"Prompt APIs of the app {app.name}")


# -- trying a version: the playground and the test cases ---------------------------------------


class PlaygroundIn(Body):
    inputs: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_SAMPLES, description="sample inputs, run one after another"
    )


class RunOut(Out):
    input: dict[str, Any]
    messages: list[dict[str, str]] = Field(description="the template rendered with the input")
    text: str | None = Field(
        description="the model's answer as it wrote it (the last, if repaired)"
    )
    output: Any = Field(description="what the API answers: the output schema's value, or the text")
    repaired: bool
    error: str | None = Field(description="why there is no answer (input, model, output)")
    deployment: str | None
    input_tokens: int
    output_tokens: int
    cost: str | None = Field(description="USD, from the model catalog (None: price unknown)")
    latency_ms: float


class PlaygroundOut(Out):
    version: int
    runs: list[RunOut]


class TestResultOut(Out):
    name: str
    passed: bool
    failures: list[str]
    run: RunOut


class TestsOut(Out):
    version: int
    passed: bool
    results: list[TestResultOut]


def _run_out(run: Run) -> RunOut:
    return RunOut(
        input=run.input,
        messages=run.messages,
        text=run.text,
        output=run.output,
        repaired=run.repaired,
        error=run.error,
        deployment=run.deployment,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost=str(run.cost) if run.cost is not None else None,
        latency_ms=run.latency_ms,
    )


def _prompt_of(ctx: Ctx, service_id: int, number: int, what: str) -> PromptApiSpec:
    """A version's prompt, for the owning team's developers (who may try it)."""
    with ctx.store.read() as session:
        service = services.get(session, service_id)
        ctx.principal.require_service(
            service.team_id, service.visibility, "developer", what, service.id
        )
        if service.kind != "prompt":
            raise Invalid.one("service_id", f"service {service.name!r} is not a prompt API")
        spec = versions.spec_of(versions.get(session, service.id, number)).prompt
    if spec is None:
        raise Invalid.one("prompt", f"version {number} has no prompt")
    return spec


@router.post(
    "/services/{service_id}/versions/{number}/playground",
    response_model=PlaygroundOut,
    summary="Run a version (a draft included) on sample inputs",
)
def playground(service_id: Id, number: Number, body: PlaygroundIn, ctx: Ctx) -> PlaygroundOut:
    """Each input rendered, sent to the version's model and checked as a call would be: the
    messages, the answer, its tokens and cost. Not recorded as a call of any app."""
    spec = _prompt_of(ctx, service_id, number, "trying versions")
    runs = run_samples(ctx.store, spec, number, body.inputs)
    return PlaygroundOut(version=number, runs=[_run_out(r) for r in runs])


@router.post(
    "/services/{service_id}/versions/{number}/test",
    response_model=TestsOut,
    summary="Run a version's test cases",
)
def test_version(service_id: Id, number: Number, ctx: Ctx) -> TestsOut:
    spec = _prompt_of(ctx, service_id, number, "testing versions")
    results = run_tests(ctx.store, spec, number)
    return TestsOut(
        version=number,
        passed=all(r.passed for r in results),
        results=[
            TestResultOut(name=r.name, passed=r.passed, failures=r.failures, run=_run_out(r.run))
            for r in results
        ],
    )


def tests_gate(
    ctx: Ctx,
    service: Service,
    version: ServiceVersion,
    override: bool,
    before: tuple[str, ...] = ("draft", "deprecated", "canary"),
) -> dict[str, Any]:
    """Before a prompt API's version serves (published, or as the canary of an A/B test): its
    test cases run, and one that fails blocks it (409 naming each failure) unless `override`;
    what was overridden is returned, for the audit log."""
    if service.kind != "prompt" or version.status not in before:
        return {}
    spec = versions.spec_of(version).prompt
    if spec is None or not spec.tests:
        return {}
    results = run_tests(ctx.store, spec, version.number)
    failed = {r.name: r.failures for r in results if not r.passed}
    if failed and not override:
        listed = "; ".join(f"{name}: {', '.join(f)}" for name, f in failed.items())
        raise Conflict(
            f"{len(failed)} of {len(results)} test cases failed ({listed}); fix the version, "
            "or publish with override_failed_tests (recorded in the audit log)",
            "tests",
        )
    return failed
