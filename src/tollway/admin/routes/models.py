"""/models (public model names and their deployments) and /pricing (limits and prices).

Everyone signed in reads them (to build services); platform admins change them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import Field, StringConstraints

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.routes.providers import ProviderName
from tollway.admin.schemas import After, Id, Limit, Out, Page
from tollway.config.entities import ContextConfig
from tollway.config.models import (
    CatalogEntryConfig,
    DeploymentConfig,
    ModelConfig,
    RoutingConfig,
)
from tollway.store import llm_models
from tollway.store.errors import Conflict
from tollway.store.schema import LlmModel, PriceEntry

router = APIRouter(tags=["models"])

ModelName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="the public name clients ask for; '*' routes every other name"),
]


class ModelIn(ModelConfig):
    """A model as in the YAML's `models` section, with its name (docs/routing.md)."""

    name: ModelName
    deployments: list[DeploymentConfig] = Field(min_length=1, max_length=64)
    fallbacks: list[str] = Field(default_factory=list, max_length=16)

    def value(self) -> ModelConfig:
        return ModelConfig.model_validate(self.model_dump(exclude={"name"}))


class ModelOut(Out):
    id: int
    name: str
    deployments: list[DeploymentConfig]
    routing: RoutingConfig
    fallbacks: list[str]
    context_window_fallback: str | None
    content_policy_fallback: str | None
    context: ContextConfig
    created_at: datetime
    updated_at: datetime
    revision: int


def model_out(model: LlmModel, value: ModelConfig) -> ModelOut:
    return ModelOut(
        id=model.id,
        name=model.name,
        deployments=list(value.deployments),
        routing=value.routing,
        fallbacks=list(value.fallbacks),
        context_window_fallback=value.context_window_fallback,
        content_policy_fallback=value.content_policy_fallback,
        context=value.context,
        created_at=model.created_at,
        updated_at=model.updated_at,
        revision=model.revision,
    )


class PriceIn(CatalogEntryConfig):
    """A model's limits and prices (USD per million tokens), as in the YAML `catalog`."""

    model: ModelName


class PriceOut(Out):
    id: int
    model: str
    entry: CatalogEntryConfig
    created_at: datetime
    updated_at: datetime
    revision: int


def price_out(entry: PriceEntry) -> PriceOut:
    return PriceOut(
        id=entry.id,
        model=entry.model,
        entry=llm_models.price_config(entry),
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        revision=entry.revision,
    )


@router.get("/models", response_model=Page[ModelOut], summary="List models")
def list_models(
    ctx: Ctx,
    name: ModelName | None = None,
    provider: ProviderName | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[ModelOut]:
    with ctx.store.read() as session:
        found = llm_models.listing(session, name=name, provider=provider, after=after, limit=limit)
        return Page(
            items=[model_out(m, llm_models.config(session, m)) for m in found.items],
            next_after=found.next_after,
        )


@router.post(
    "/models", response_model=ModelOut, status_code=status.HTTP_201_CREATED, summary="Add a model"
)
def create_model(body: ModelIn, ctx: Ctx, response: Response) -> ModelOut:
    ctx.principal.require_admin("add models")
    value = body.value()
    with ctx.store.write(ctx.principal.actor) as tx:
        model = llm_models.create(tx, body.name, value)
    response.headers["Location"] = f"/admin/v1/models/{model.id}"
    tag(response, model.revision)
    return model_out(model, value)


@router.get("/models/{model_id}", response_model=ModelOut, summary="Read a model")
def get_model(model_id: Id, ctx: Ctx, response: Response) -> ModelOut:
    with ctx.store.read() as session:
        model = llm_models.get(session, model_id)
        value = llm_models.config(session, model)
    tag(response, model.revision)
    return model_out(model, value)


@router.put("/models/{model_id}", response_model=ModelOut, summary="Replace a model")
def replace_model(
    model_id: Id, body: ModelIn, ctx: Ctx, response: Response, if_match: IfMatch
) -> ModelOut:
    ctx.principal.require_admin("change models")
    value = body.value()
    with ctx.store.write(ctx.principal.actor) as tx:
        model = llm_models.get(tx.session, model_id)
        if body.name != model.name:
            if llm_models.serving_services(tx.session, model.name):
                raise Conflict("services grant this model by its name: it cannot be renamed")
            if llm_models.falling_back_to(tx.session, model.name):
                raise Conflict("other models fall back to it by its name: it cannot be renamed")
            if llm_models.find(tx.session, body.name) is not None:
                raise Conflict(f"a model named {body.name!r} already exists", "name")
            model.name = body.name
        model = llm_models.replace(tx, model, value, expected_revision=if_match)
    tag(response, model.revision)
    return model_out(model, value)


@router.delete(
    "/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a model"
)
def delete_model(model_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    ctx.principal.require_admin("delete models")
    with ctx.store.write(ctx.principal.actor) as tx:
        llm_models.delete(tx, llm_models.get(tx.session, model_id), expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/pricing", response_model=Page[PriceOut], summary="List prices and limits")
def list_prices(ctx: Ctx, after: After = None, limit: Limit = 50) -> Page[PriceOut]:
    with ctx.store.read() as session:
        found = llm_models.prices(session, after=after, limit=limit)
        return Page(items=[price_out(p) for p in found.items], next_after=found.next_after)


@router.post(
    "/pricing",
    response_model=PriceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a model's prices and limits",
)
def create_price(body: PriceIn, ctx: Ctx, response: Response) -> PriceOut:
    ctx.principal.require_admin("set prices")
    with ctx.store.write(ctx.principal.actor) as tx:
        if llm_models.find_price(tx.session, body.model) is not None:
            raise Conflict(f"{body.model!r} already has an entry", "model")
        entry, _ = llm_models.set_price(tx, body.model, _entry(body))
    response.headers["Location"] = f"/admin/v1/pricing/{entry.id}"
    tag(response, entry.revision)
    return price_out(entry)


def _entry(body: PriceIn) -> CatalogEntryConfig:
    return CatalogEntryConfig.model_validate(body.model_dump(exclude={"model"}))


@router.get("/pricing/{price_id}", response_model=PriceOut, summary="Read a price entry")
def get_price(price_id: Id, ctx: Ctx, response: Response) -> PriceOut:
    with ctx.store.read() as session:
        entry = llm_models.price_by_id(session, price_id)
    tag(response, entry.revision)
    return price_out(entry)


@router.put("/pricing/{price_id}", response_model=PriceOut, summary="Replace a price entry")
def replace_price(
    price_id: Id, body: PriceIn, ctx: Ctx, response: Response, if_match: IfMatch
) -> PriceOut:
    ctx.principal.require_admin("set prices")
    with ctx.store.write(ctx.principal.actor) as tx:
        entry = llm_models.price_by_id(tx.session, price_id)
        if body.model != entry.model:
            raise Conflict("the model of a price entry cannot change: delete it and add one")
        entry, _ = llm_models.set_price(tx, body.model, _entry(body), expected_revision=if_match)
    tag(response, entry.revision)
    return price_out(entry)


@router.delete(
    "/pricing/{price_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a price entry"
)
def delete_price(price_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    ctx.principal.require_admin("delete prices")
    with ctx.store.write(ctx.principal.actor) as tx:
        llm_models.delete_price(
            tx, llm_models.price_by_id(tx.session, price_id), expected_revision=if_match
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
