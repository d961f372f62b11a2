"""Public model names and their deployments (the YAML's `models`), and model prices and
limits (the YAML's `catalog`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from tollway.config.models import CatalogEntryConfig, DeploymentConfig, ModelConfig
from tollway.store.audit import diff
from tollway.store.database import Tx
from tollway.store.errors import Conflict, FieldProblem, Invalid
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import (
    Deployment,
    LlmModel,
    PriceEntry,
    Provider,
    Service,
    ServiceVersion,
    utcnow,
)


def find(session: Session, name: str) -> LlmModel | None:
    return session.scalars(select(LlmModel).where(LlmModel.name == name)).one_or_none()


def get(session: Session, model_id: int) -> LlmModel:
    return by_id(session, LlmModel, model_id, "model")


def listing(
    session: Session,
    *,
    name: str | None = None,
    provider: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[LlmModel]:
    query: Select[LlmModel] = select(LlmModel)
    if name is not None:
        query = query.where(LlmModel.name == name)
    if provider is not None:
        query = query.where(
            LlmModel.id.in_(
                select(Deployment.model_id)
                .join(Provider, Provider.id == Deployment.provider_id)
                .where(Provider.name == provider)
            )
        )
    return page(session, query, LlmModel.id, after=after, limit=limit)


def config(session: Session, model: LlmModel) -> ModelConfig:
    rows = session.execute(
        select(Deployment, Provider.name)
        .join(Provider, Provider.id == Deployment.provider_id)
        .where(Deployment.model_id == model.id)
        .order_by(Deployment.position)
    )
    deployments = [
        DeploymentConfig(
            provider=name,
            model=d.upstream_model,
            name=d.name,
            weight=d.weight,
            rpm=d.rpm,
            tpm=d.tpm,
        )
        for d, name in rows
    ]
    return ModelConfig.model_validate({**(model.routing or {}), "deployments": deployments})


def _routing(value: ModelConfig) -> dict[str, Any] | None:
    """The model's settings besides its deployments, as set (None: all defaults)."""
    data = value.model_dump(mode="json", exclude={"deployments"}, exclude_defaults=True)
    return data or None


def _check_fallbacks(session: Session, name: str, value: ModelConfig) -> None:
    problems: list[FieldProblem] = []
    named = [(f"fallbacks[{i}]", other) for i, other in enumerate(value.fallbacks)]
    named += [
        (field, other)
        for field, other in (
            ("context_window_fallback", value.context_window_fallback),
            ("content_policy_fallback", value.content_policy_fallback),
            ("context.summary_model", value.context.summary_model),
        )
        if other is not None
    ]
    for field, other in named:
        if other == name and field == "context.summary_model":
            continue  # a model may summarise its own conversations
        if other == name:
            problems.append(FieldProblem(field, "a model cannot fall back to itself"))
        elif find(session, other) is None:
            problems.append(FieldProblem(field, f"unknown model {other!r}"))
    if problems:
        raise Invalid(problems)


def falling_back_to(session: Session, name: str) -> list[str]:
    """Models whose fallbacks (or summary model) name `name`."""
    found = []
    for model in session.scalars(select(LlmModel).where(LlmModel.routing.is_not(None))):
        routing = model.routing or {}
        if model.name != name and name in (
            *routing.get("fallbacks", ()),
            routing.get("context_window_fallback"),
            routing.get("content_policy_fallback"),
            (routing.get("context") or {}).get("summary_model"),
        ):
            found.append(model.name)
    return sorted(found)


def _provider_ids(session: Session, value: ModelConfig) -> list[int]:
    ids: list[int] = []
    problems: list[FieldProblem] = []
    for i, deployment in enumerate(value.deployments):
        found = session.scalars(
            select(Provider.id).where(Provider.name == deployment.provider)
        ).one_or_none()
        if found is None:
            problems.append(
                FieldProblem(
                    f"deployments[{i}].provider", f"unknown provider {deployment.provider!r}"
                )
            )
        else:
            ids.append(found)
    if problems:
        raise Invalid(problems)
    return ids


def _view(value: ModelConfig) -> dict[str, Any]:
    view: dict[str, Any] = {"deployments": [d.model_dump() for d in value.deployments]}
    routing = _routing(value)
    if routing:
        view.update(routing)
    return view


def _write_deployments(session: Session, model: LlmModel, value: ModelConfig) -> None:
    ids = _provider_ids(session, value)
    session.execute(sql_delete(Deployment).where(Deployment.model_id == model.id))
    for position, (deployment, provider_id) in enumerate(zip(value.deployments, ids, strict=True)):
        session.add(
            Deployment(
                model_id=model.id,
                position=position,
                provider_id=provider_id,
                upstream_model=deployment.model,
                name=deployment.name,
                weight=deployment.weight,
                rpm=deployment.rpm,
                tpm=deployment.tpm,
            )
        )


def create(tx: Tx, name: str, value: ModelConfig, *, check_fallbacks: bool = True) -> LlmModel:
    """Adds a model; its fallbacks must name models of the store (unless the caller checked
    them as a whole: a declarative file's models may fall back to one another)."""
    if find(tx.session, name) is not None:
        raise Conflict(f"a model named {name!r} already exists", "name")
    _provider_ids(tx.session, value)
    if check_fallbacks:
        _check_fallbacks(tx.session, name, value)
    model = LlmModel(name=name, routing=_routing(value))
    tx.session.add(model)
    tx.session.flush()
    _write_deployments(tx.session, model, value)
    tx.session.flush()
    tx.audit("create", "model", name, entity_id=model.id, changes=_view(value))
    return model


def replace(
    tx: Tx,
    model: LlmModel,
    value: ModelConfig,
    *,
    expected_revision: int | None = None,
    check_fallbacks: bool = True,
) -> LlmModel:
    check_revision(model, expected_revision, f"model {model.name}")
    before = _view(config(tx.session, model))
    after = _view(value)
    if before != after:
        if check_fallbacks:
            _check_fallbacks(tx.session, model.name, value)
        _write_deployments(tx.session, model, value)
        # The model row's revision moves with its deployments (they are its content).
        model.routing = _routing(value)
        model.updated_at = utcnow()
        tx.session.flush()
        tx.audit("update", "model", model.name, entity_id=model.id, changes=diff(before, after))
    return model


def serving_services(session: Session, model_name: str) -> list[str]:
    """Services whose (non-retired) versions grant this model."""
    rows = session.execute(
        select(Service.name, ServiceVersion.spec)
        .join(ServiceVersion, ServiceVersion.service_id == Service.id)
        .where(Service.kind == "ai", ServiceVersion.status != "retired")
    )
    return sorted({name for name, spec in rows if model_name in spec.get("models", [])})


def delete(tx: Tx, model: LlmModel, *, expected_revision: int | None = None) -> None:
    check_revision(model, expected_revision, f"model {model.name}")
    services = serving_services(tx.session, model.name)
    if services:
        raise Conflict(
            f"model {model.name!r} is granted by services {', '.join(services)}: "
            "retire those versions first"
        )
    referring = falling_back_to(tx.session, model.name)
    if referring:
        raise Conflict(
            f"models {', '.join(referring)} fall back to {model.name!r}: change them first"
        )
    tx.audit(
        "delete", "model", model.name, entity_id=model.id, changes=_view(config(tx.session, model))
    )
    tx.session.delete(model)
    tx.session.flush()


# --- prices and limits ------------------------------------------------------------------


def find_price(session: Session, model: str) -> PriceEntry | None:
    return session.scalars(select(PriceEntry).where(PriceEntry.model == model)).one_or_none()


def price_by_id(session: Session, price_id: int) -> PriceEntry:
    return by_id(session, PriceEntry, price_id, "price entry")


def prices(session: Session, *, after: int | None = None, limit: int = 50) -> Page[PriceEntry]:
    return page(session, select(PriceEntry), PriceEntry.id, after=after, limit=limit)


def price_config(entry: PriceEntry) -> CatalogEntryConfig:
    return CatalogEntryConfig.model_validate(entry.entry)


def set_price(
    tx: Tx, model: str, value: CatalogEntryConfig, *, expected_revision: int | None = None
) -> tuple[PriceEntry, bool]:
    """Creates or replaces a model's entry; returns it and whether it was created."""
    data = value.model_dump(mode="json")
    found = tx.session.scalars(select(PriceEntry).where(PriceEntry.model == model)).one_or_none()
    if found is None:
        entry = PriceEntry(model=model, entry=data)
        tx.session.add(entry)
        tx.session.flush()
        tx.audit("create", "price", model, entity_id=entry.id, changes=data)
        return entry, True
    check_revision(found, expected_revision, f"price entry {model}")
    if found.entry != data:
        changes = diff(found.entry, data)
        found.entry = data
        tx.session.flush()
        tx.audit("update", "price", model, entity_id=found.id, changes=changes)
    return found, False


def delete_price(tx: Tx, entry: PriceEntry, *, expected_revision: int | None = None) -> None:
    check_revision(entry, expected_revision, f"price entry {entry.model}")
    tx.audit("delete", "price", entry.model, entity_id=entry.id, changes=entry.entry)
    tx.session.delete(entry)
    tx.session.flush()
