"""Versions of a service and their lifecycle: draft -> published -> deprecated -> retired.

A draft can be edited and deleted. Publishing freezes it and makes it the one version that
serves; the version it replaces becomes deprecated. A deprecated version can serve again
(`rollback`) until it is retired; a retired version is kept for the record only.

Beside the published version, one other (a draft, frozen by this, or a deprecated one) may
serve a share of the calls as the service's canary: `start_canary` with a weight in percent
(0: only calls that ask for it by version; 100: every call, the instant switch of a blue-green
release). Publishing the canary promotes it; deprecating it ends the canary.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tollway.config.entities import ServiceSpec
from tollway.config.mcp_server import McpServerSpec
from tollway.store import services
from tollway.store.database import Store, Tx
from tollway.store.errors import Conflict, FieldProblem, Invalid, NotFound
from tollway.store.queries import Page, check_revision, page
from tollway.store.schema import LlmModel, Service, ServiceVersion, utcnow
from tollway.store.validation import invalid_from


def spec_of(version: ServiceVersion) -> ServiceSpec:
    return ServiceSpec.model_validate(version.spec)


def get(session: Session, service_id: int, number: int) -> ServiceVersion:
    found = session.scalars(
        select(ServiceVersion).where(
            ServiceVersion.service_id == service_id, ServiceVersion.number == number
        )
    ).one_or_none()
    if found is None:
        raise NotFound("version", number)
    return found


def listing(
    session: Session,
    service_id: int,
    *,
    status: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[ServiceVersion]:
    query = select(ServiceVersion).where(ServiceVersion.service_id == service_id)
    if status is not None:
        query = query.where(ServiceVersion.status == status)
    return page(session, query, ServiceVersion.id, after=after, limit=limit)


def check_spec(session: Session, service: Service, spec: ServiceSpec) -> None:
    """The content fits the service's kind, and every model it names exists."""
    problem = spec.problem_for(service.kind)  # type: ignore[arg-type]
    if problem:
        field = {"ai": "models", "rest": "upstream", "prompt": "prompt", "mcp": "mcp"}[service.kind]
        raise Invalid.one(field, problem)
    if spec.prompt is not None:
        model = spec.prompt.model
        if session.scalars(select(LlmModel.name).where(LlmModel.name == model)).first() is None:
            raise Invalid.one("prompt.model", f"unknown model {model!r}")
    if spec.models:
        summarisers = {
            name: setting.summary_model
            for name, setting in (spec.context or {}).items()
            if setting.summary_model is not None
        }
        named = {*spec.models, *summarisers.values()}
        known = set(session.scalars(select(LlmModel.name).where(LlmModel.name.in_(named))))
        missing = [
            FieldProblem(f"models[{i}]", f"unknown model {name!r}")
            for i, name in enumerate(spec.models)
            if name not in known
        ]
        missing.extend(
            FieldProblem(f"context.{model}.summary_model", f"unknown model {summary!r}")
            for model, summary in summarisers.items()
            if summary not in known
        )
        if missing:
            raise Invalid(missing)


def _stored(
    spec: ServiceSpec, store: Store, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The spec as the store keeps it: an MCP server's bearer token sealed. A sealed token
    is the gateway's own, never taken from outside (only kept as the version had it)."""
    mcp = spec.mcp
    if mcp is not None:
        kept = ((current or {}).get("mcp") or {}).get("sealed_token")
        if mcp.sealed_token is not None and mcp.sealed_token != kept:
            raise Invalid.one("mcp.sealed_token", "is set by the gateway: give bearer_token")
        if mcp.bearer_token is not None:
            sealed = store.seal({"token": mcp.bearer_token})
            mcp = mcp.model_copy(update={"bearer_token": None, "sealed_token": sealed})
            spec = spec.model_copy(update={"mcp": mcp})
    return spec.model_dump(mode="json", exclude_none=True)


def as_given(version: ServiceVersion, store: Store) -> dict[str, Any]:
    """The version's spec as it was given (its MCP token opened), to compare with a file's."""
    mcp = version.spec.get("mcp")
    if not isinstance(mcp, dict) or "sealed_token" not in mcp:
        return version.spec
    token = store.unseal(mcp["sealed_token"])["token"]
    given = {k: v for k, v in mcp.items() if k != "sealed_token"} | {"bearer_token": token}
    return {**version.spec, "mcp": given}


def opened(mcp: McpServerSpec, store: Store) -> McpServerSpec:
    """An MCP server's spec with its sealed token opened (for reaching the server)."""
    if mcp.sealed_token is None:
        return mcp
    token = store.unseal(mcp.sealed_token)["token"]
    return mcp.model_copy(update={"bearer_token": token, "sealed_token": None})


def _audit(tx: Tx, service: Service, action: str, changes: dict[str, Any]) -> None:
    tx.audit(
        action,
        "service",
        services.label(tx.session, service),
        entity_id=service.id,
        team_id=service.team_id,
        changes=changes,
    )


def create(
    tx: Tx,
    service: Service,
    spec: ServiceSpec,
    *,
    notes: str = "",
    number: int | None = None,
    status: str = "draft",
    weight: int | None = None,
) -> ServiceVersion:
    """A new draft, numbered after the last version (or `number`, for declarative files)."""
    check_spec(tx.session, service, spec)
    last = tx.session.scalar(
        select(func.max(ServiceVersion.number)).where(ServiceVersion.service_id == service.id)
    )
    if number is None:
        number = (last or 0) + 1
    elif tx.session.scalars(
        select(ServiceVersion.id).where(
            ServiceVersion.service_id == service.id, ServiceVersion.number == number
        )
    ).first():
        raise Conflict(f"version {number} already exists", "number")
    stored = _stored(spec, tx.store)
    version = ServiceVersion(
        service_id=service.id,
        number=number,
        status="draft",
        spec=stored,
        notes=notes,
    )
    tx.session.add(version)
    tx.session.flush()
    _audit(tx, service, "create_version", {"version": number} | stored)
    if status != "draft":
        set_status(tx, service, version, status, weight)
    return version


def _frozen(version: ServiceVersion) -> None:
    if version.status != "draft":
        raise Conflict(
            f"version {version.number} is {version.status}: only a draft can change "
            "(create a new version)"
        )


def update(
    tx: Tx,
    service: Service,
    version: ServiceVersion,
    *,
    spec: ServiceSpec | None = None,
    notes: str | None = None,
    expected_revision: int | None = None,
) -> ServiceVersion:
    check_revision(version, expected_revision, f"version {version.number}")
    _frozen(version)
    changes: dict[str, Any] = {}
    stored = _stored(spec, tx.store, version.spec) if spec is not None else version.spec
    if spec is not None and stored != version.spec:
        check_spec(tx.session, service, spec)
        changes["spec"] = {"from": version.spec, "to": stored}
        version.spec = stored
    if notes is not None and notes != version.notes:
        changes["notes"] = {"from": version.notes, "to": notes}
        version.notes = notes
    if changes:
        tx.session.flush()
        _audit(tx, service, "update_version", {"version": version.number} | changes)
    return version


def delete(
    tx: Tx, service: Service, version: ServiceVersion, *, expected_revision: int | None = None
) -> None:
    check_revision(version, expected_revision, f"version {version.number}")
    _frozen(version)
    _audit(tx, service, "delete_version", {"version": version.number})
    tx.session.delete(version)
    tx.session.flush()


def _move(tx: Tx, service: Service, version: ServiceVersion, status: str, action: str) -> None:
    before = version.status
    version.status = status
    if status == "published":
        version.published_at = utcnow()
    if status != "canary":
        version.traffic_weight = None
    tx.session.flush()
    _audit(
        tx,
        service,
        action,
        {"version": version.number, "status": {"from": before, "to": status}},
    )


def publish(
    tx: Tx, service: Service, version: ServiceVersion, *, expected_revision: int | None = None
) -> ServiceVersion:
    """Freezes a draft and makes it serve; the version serving until now is deprecated."""
    check_revision(version, expected_revision, f"version {version.number}")
    if version.status not in ("draft", "canary"):
        hint = " (use rollback to serve it again)" if version.status == "deprecated" else ""
        raise Conflict(f"version {version.number} is {version.status}, not a draft{hint}")
    try:
        check_spec(tx.session, service, spec_of(version))
    except ValidationError as exc:
        raise invalid_from(exc, "spec") from None
    _step_down(tx, service)
    _move(tx, service, version, "published", "promote" if version.status == "canary" else "publish")
    return version


def canary(session: Session, service_id: int) -> ServiceVersion | None:
    """The version serving as the service's canary, if any."""
    return session.scalars(
        select(ServiceVersion).where(
            ServiceVersion.service_id == service_id, ServiceVersion.status == "canary"
        )
    ).one_or_none()


def start_canary(
    tx: Tx,
    service: Service,
    version: ServiceVersion,
    weight: int,
    *,
    expected_revision: int | None = None,
) -> ServiceVersion:
    """Serves `version` beside the published one, with `weight` percent of the calls; on the
    canary already serving, changes its weight. A draft is frozen by this."""
    check_revision(version, expected_revision, f"version {version.number}")
    if not 0 <= weight <= 100:
        raise Invalid.one("weight", "must be a percentage, 0 to 100")
    if service.kind in ("ai", "mcp"):
        raise Conflict("canary releases (an A/B split) are for services of kind rest or prompt")
    if version.status == "canary":
        if version.traffic_weight != weight:
            before = version.traffic_weight
            version.traffic_weight = weight
            tx.session.flush()
            _audit(
                tx,
                service,
                "canary_weight",
                {"version": version.number, "weight": {"from": before, "to": weight}},
            )
        return version
    if version.status not in ("draft", "deprecated"):
        raise Conflict(
            f"version {version.number} is {version.status}: a canary is a draft or a "
            "deprecated version"
        )
    if services.published(tx.session, service.id) is None:
        raise Conflict("the service has no published version for a canary to run beside")
    running = canary(tx.session, service.id)
    if running is not None:
        raise Conflict(
            f"version {running.number} is the canary: promote it (publish) or end it "
            "(deprecate) first"
        )
    try:
        check_spec(tx.session, service, spec_of(version))
    except ValidationError as exc:
        raise invalid_from(exc, "spec") from None
    _move(tx, service, version, "canary", "start_canary")
    version.traffic_weight = weight
    tx.session.flush()
    _audit(tx, service, "canary_weight", {"version": version.number, "weight": weight})
    return version


def _no_canary_left_alone(tx: Tx, service: Service, version: ServiceVersion) -> None:
    """A canary runs beside a published version: that one cannot stop serving under it."""
    if version.status != "published":
        return
    running = canary(tx.session, service.id)
    if running is not None:
        raise Conflict(
            f"version {running.number} is a canary beside this one: promote it (publish) or "
            "end it (deprecate) first"
        )


def _step_down(tx: Tx, service: Service) -> None:
    serving = services.published(tx.session, service.id)
    if serving is not None:
        _move(tx, service, serving, "deprecated", "deprecate")


def deprecate(
    tx: Tx, service: Service, version: ServiceVersion, *, expected_revision: int | None = None
) -> ServiceVersion:
    """Stops a published version serving (the service then serves nothing)."""
    check_revision(version, expected_revision, f"version {version.number}")
    if version.status not in ("published", "canary"):
        raise Conflict(f"version {version.number} is {version.status}, not published")
    _no_canary_left_alone(tx, service, version)
    _move(
        tx,
        service,
        version,
        "deprecated",
        "end_canary" if version.status == "canary" else "deprecate",
    )
    return version


def retire(
    tx: Tx, service: Service, version: ServiceVersion, *, expected_revision: int | None = None
) -> ServiceVersion:
    """Retires a published or deprecated version for good."""
    check_revision(version, expected_revision, f"version {version.number}")
    if version.status not in ("published", "canary", "deprecated"):
        hint = " (delete a draft instead)" if version.status == "draft" else ""
        raise Conflict(f"version {version.number} is {version.status}{hint}")
    _no_canary_left_alone(tx, service, version)
    _move(tx, service, version, "retired", "retire")
    return version


def rollback(tx: Tx, service: Service, number: int | None = None) -> ServiceVersion:
    """Serves an earlier published (now deprecated) version again, in one step: by default
    the one published most recently before the current one."""
    if number is None:
        serving = services.published(tx.session, service.id)
        query = select(ServiceVersion).where(
            ServiceVersion.service_id == service.id,
            ServiceVersion.status == "deprecated",
            ServiceVersion.published_at.is_not(None),
        )
        if serving is not None and serving.published_at is not None:
            query = query.where(ServiceVersion.published_at < serving.published_at)
        target = tx.session.scalars(
            query.order_by(ServiceVersion.published_at.desc(), ServiceVersion.number.desc())
        ).first()
        if target is None:
            raise Conflict("there is no earlier published version to roll back to")
    else:
        target = get(tx.session, service.id, number)
        if target.status != "deprecated":
            raise Conflict(
                f"version {number} is {target.status}: only a deprecated (once published) "
                "version can serve again",
                "version",
            )
    check_spec(tx.session, service, spec_of(target))
    _step_down(tx, service)
    _move(tx, service, target, "published", "rollback")
    return target


def set_status(
    tx: Tx, service: Service, version: ServiceVersion, status: str, weight: int | None = None
) -> None:
    """Moves a version to `status` along the lifecycle (for declarative files); a canary
    takes `weight` percent of the calls."""
    if status == "canary":
        start_canary(tx, service, version, 0 if weight is None else weight)
        return
    if status == version.status:
        return
    order = ["draft", "published", "deprecated", "retired"]
    if status == "published":
        if version.status in ("draft", "canary"):
            publish(tx, service, version)
        else:
            rollback(tx, service, version.number)
    elif status == "deprecated":
        if version.status == "draft":
            publish(tx, service, version)
        deprecate(tx, service, version)
    elif status == "retired":
        if version.status == "draft":
            publish(tx, service, version)
        retire(tx, service, version)
    else:
        raise Conflict(
            f"version {version.number} cannot go back from {version.status} to {status} "
            f"(the lifecycle is {' -> '.join(order)})"
        )
