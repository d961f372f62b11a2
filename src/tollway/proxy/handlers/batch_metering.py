"""Metering a passed-through batch once its provider's files are down: each answered line a
call record of the batch's key at the provider's batch price, its cost added to the budgets
the key's calls fall under; and the batch's final counts, counted on the way.

What a record needs is what was saved at upload (batches/jobs.py `Upstream.models` and
`.key`), not the configuration as it is now (up to a day later, routing, pass-through or the
key may have changed). The results are read and recorded in chunks, the event loop given
back between them, and the progress saved after each chunk with no await between a chunk's
records and its save: a stop (or a cancelled task) never records a line twice; only a
worker killed outright in that instant would, for one chunk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from itertools import islice
from typing import IO, Any

import orjson

from tollway.batches.jobs import Batch, BatchStore, Line, Upstream
from tollway.batches.passthrough import (
    Destination,
    destination,
    info_of_state,
    info_state,
    line_model,
    results,
)
from tollway.config.snapshot import AppRef, ClientKey, Deployment, RouteEntry, RuntimeConfig
from tollway.limits.limiter import Limiter
from tollway.llm.catalog import ModelInfo, batch_cost
from tollway.policies.context import RequestContext
from tollway.proxy.http import Request

log = logging.getLogger("tollway.batches")

# Results recorded between two returns to the event loop (and two saves of the progress).
CHUNK = 200
_JSON = b"application/json"


def key_state(key: ClientKey | None) -> dict[str, Any] | None:
    """Who made a batch, as its state keeps it: enough to record and charge its lines if
    the key is deleted meanwhile."""
    if key is None:
        return None
    app = key.app
    return {
        "name": key.name,
        "key_id": key.key_id,
        "app": None
        if app is None
        else {"id": app.id, "name": app.name, "team_id": app.team_id, "team": app.team},
    }


def deployment_state(where: Destination, model: str) -> dict[str, Any]:
    """The deployment that serves `model` in a passed-through batch, as its state keeps it."""
    deployment = where.deployments[model]
    return {
        "label": deployment.label,
        "model": deployment.model or model,
        "provider": where.provider.name,
        "kind": where.provider.kind.name,
        "info": info_state(deployment.info),
    }


class _Priced:
    """How one model's lines are recorded: the deployment (None when its provider is no
    longer configured: recorded without it), its prices and the provider's type."""

    __slots__ = ("deployment", "info", "kind")

    def __init__(self, deployment: Deployment | None, info: ModelInfo | None, kind: str) -> None:
        self.deployment = deployment
        self.info = info
        self.kind = kind


def _key_of(config: RuntimeConfig, batch: Batch, upstream: Upstream) -> ClientKey | None:
    key = config.keys.get(bytes.fromhex(batch.key_digest)) if batch.key_digest else None
    if key is not None or not batch.key_digest:
        return key
    saved = upstream.key
    if isinstance(saved, dict) and isinstance(saved.get("name"), str):
        # Deleted since: its lines are still its calls, recorded and charged under it.
        app = saved.get("app")
        ref = AppRef(app["id"], app["name"], app["team_id"], app["team"]) if app else None
        return ClientKey.build(saved["name"], None, app=ref, key_id=int(saved["key_id"]))
    return None


def _pricing(
    config: RuntimeConfig, batch: Batch, upstream: Upstream, key: ClientKey | None, models: set[str]
) -> dict[str, _Priced]:
    found: dict[str, _Priced] = {}
    if upstream.models:
        providers = {
            d.provider.name: d.provider
            for route in (*config.models.values(), *([config.wildcard] if config.wildcard else []))
            for d in route.deployments
        }
        for model, saved in upstream.models.items():
            info = info_of_state(saved.get("info"))
            provider = providers.get(str(saved.get("provider")))
            deployment = None
            if provider is not None:
                label = str(saved.get("label") or "")
                deployment = Deployment(provider, str(saved.get("model")), info, label=label)
            found[model] = _Priced(deployment, info, str(saved.get("kind") or ""))
        return found
    # A batch saved before its deployments were: resolved from the configuration now.
    where = destination(config, key, models)
    if where is not None:
        for model, deployment in where.deployments.items():
            found[model] = _Priced(deployment, deployment.info, where.provider.kind.name)
    return found


async def meter(
    store: BatchStore, batch: Batch, upstream: Upstream, config: RuntimeConfig
) -> Upstream:
    """Record every result not yet recorded; the state with its final counts."""
    lines, _ = await asyncio.to_thread(store.read_input, batch)
    by_id = {line.custom_id: line for line in lines}
    del lines
    entry = config.routes.exact.get(batch.endpoint, {}).get("POST")
    key = _key_of(config, batch, upstream)
    models = (
        {m for m in map(line_model, by_id.values()) if m is not None}
        if not upstream.models
        else set(upstream.models)
    )
    priced = _pricing(config, batch, upstream, key, models)
    uncharged = Decimal(0)
    if entry is None or (batch.key_digest and key is None):
        log.error(
            "batch %s: its lines cannot be recorded (%s): their cost is charged to no budget",
            batch.id,
            "its endpoint is no longer routed" if entry is None else "its key no longer exists",
        )
    handles = await asyncio.to_thread(_open, store, batch)
    try:
        found = _each(handles)
        # Recorded before a stop: skipped.
        await asyncio.to_thread(
            lambda: next(islice(found, upstream.metered, upstream.metered), None)
        )
        while True:
            chunk = await asyncio.to_thread(lambda: list(islice(found, CHUNK)))
            if not chunk:
                break
            completed, failed = upstream.completed, upstream.failed
            for custom_id, status, body in chunk:
                if 200 <= status < 300:
                    completed += 1
                else:
                    failed += 1
                line = by_id.get(custom_id)
                if line is None or not status:
                    continue  # not ours, or never run (expired, cancelled): not a call
                if entry is None or (batch.key_digest and key is None):
                    uncharged += _cost_of(entry, priced, line, status, body)
                    continue
                _record(config, entry, key, batch, line, priced, status, body)
            upstream = replace(
                upstream,
                metered=upstream.metered + len(chunk),
                completed=completed,
                failed=failed,
            )
            # Saved here, on the loop, with no await since the records: a stop between the
            # two would record this chunk twice (a small file, written in well under a ms).
            batch = store.update(batch, upstream=upstream)
            await asyncio.sleep(0)
    finally:
        await asyncio.to_thread(_close, handles)
    if uncharged:
        log.error("batch %s: USD %s of its lines charged to no budget", batch.id, uncharged)
    return upstream


def _open(store: BatchStore, batch: Batch) -> list[IO[bytes]]:
    handles: list[IO[bytes]] = []
    for file_id in (batch.output_file_id, batch.error_file_id):
        try:
            handles.append(store.files.data_path(batch.owner, file_id).open("rb"))
        except FileNotFoundError:
            continue
    return handles


def _close(handles: list[IO[bytes]]) -> None:
    for handle in handles:
        handle.close()


def _each(handles: list[IO[bytes]]) -> Iterator[tuple[str, int, dict[str, Any] | None]]:
    for handle in handles:
        yield from results(handle)


def _cost_of(
    entry: RouteEntry | None,
    priced: dict[str, _Priced],
    line: Line,
    status: int,
    body: dict[str, Any] | None,
) -> Decimal:
    api = entry.api if entry is not None else None
    found = priced.get(line_model(line) or "")
    if api is None or found is None or found.info is None or body is None or status >= 300:
        return Decimal(0)
    usage = api.usage_of(orjson.dumps(body))
    return batch_cost(found.info, usage, found.kind) if usage is not None else Decimal(0)


def _record(
    config: RuntimeConfig,
    entry: RouteEntry,
    key: ClientKey | None,
    batch: Batch,
    line: Line,
    priced: dict[str, _Priced],
    status: int,
    body: dict[str, Any] | None,
) -> None:
    """The call record of one line the provider answered, through the route's done phase (the
    record, and the cost added to the key's budgets)."""
    model = line_model(line) or ""
    found = priced.get(model)
    request = Request(
        "POST",
        batch.endpoint,
        b"",
        [(b"content-type", _JSON), (b"x-tollway-batch", batch.id.encode())],
        line.body,
        "1.1",
        True,
        # The request id names the line: the batch, and the client's custom_id.
        f"{batch.id}-{line.custom_id}"[:200].encode("utf-8", "replace"),
        batch.client_address,
    )
    ctx = RequestContext(request, config, entry)
    ctx.key = key
    ctx.model = model
    ctx.service = _service(config, key, model)
    ctx.deployment = found.deployment if found is not None else None
    ctx.attempts = 1
    ctx.upstream_started_at = ctx.started_at
    ctx.finished_at = time.monotonic()
    ctx.status = status
    ok = 200 <= status < 300
    ctx.outcome = "completed" if ok else "upstream_error"
    api = entry.api
    if ok and body is not None and api is not None:
        ctx.usage = api.usage_of(orjson.dumps(body))
    if found is not None and found.info is not None and ctx.usage is not None:
        ctx.cost = batch_cost(found.info, ctx.usage, found.kind)
    if not ok and isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("code") is not None:
            ctx.error_code = str(error["code"])
    limiter = limiter_of(entry)
    if limiter is not None:
        ticket = limiter.afterwards(ctx)
        if ticket is not None:
            ctx.reserved = {"limits": ticket}
    entry.pipeline.done(ctx)


def limiter_of(entry: RouteEntry) -> Limiter | None:
    for policy in entry.pipeline.done_phase:
        found = getattr(policy, "limiter", None)
        if isinstance(found, Limiter):
            return found
    return None


def _service(config: RuntimeConfig, key: ClientKey | None, model: str) -> Any:
    """The service the call is accounted to: as the subscription policy finds it."""
    tenancy = config.tenancy
    if tenancy is None or key is None or key.app is None:
        return None
    for service_id in tenancy.model_services.get(model, ()):
        if tenancy.status(key.app.id, service_id) == "approved":
            return tenancy.services[service_id]
    return None
