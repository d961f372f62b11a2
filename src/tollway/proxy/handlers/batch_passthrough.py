"""Batches passed through to a provider's own Batch API (which batches: batches/passthrough.py).

At creation, the key is checked for each model as one of the batch's lines would be (the
route's body phase: its model list, its app's subscription, its budget); a refusal refuses the
batch, in OpenAI's shape. A rate limit that refuses the check says nothing of the budget
behind it, so the batch is then run by the gateway instead, at the pace the limit allows.

Then the worker that holds the batch's lock takes it through its steps, saving the batch's
state after each (batches/jobs.py `Upstream.step`):

- upload: the input, each line's model renamed, goes up as `<batch id>.jsonl` (purpose
  `batch`) with the provider's credentials (never the client's key). A file of that name and
  size already there is an earlier attempt's, taken instead of uploading again.
- create: the provider's batch, for the same endpoint, window and metadata. A provider batch
  of our input file already there is an earlier attempt's, taken instead of making another.
- poll: every `poll_s`, the provider's batch, whose status and counts the client sees; a
  cancel asked meanwhile is passed on.
- download: once the provider's batch has ended, its output and error files, into the
  gateway's own (under the gateway's file ids), each written apart and renamed whole.
- meter: each answered line, a call record of the batch's key at the provider's batch price,
  and its cost added to the budgets it falls under.
- then the files are published and the batch ends as the provider's did.

A restart anywhere takes the batch up at its step; each step is done once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from tollway.batches.jobs import Batch, BatchStore, Line, Upstream
from tollway.batches.passthrough import (
    Destination,
    destination,
    find_batch,
    find_file,
    line_model,
    results,
    upload_form,
    upstream_input,
)
from tollway.config.snapshot import ClientKey, ProviderRuntime, RouteEntry, RuntimeConfig
from tollway.errors import GatewayError
from tollway.limits.limiter import Limiter
from tollway.llm.catalog import batch_cost
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.exchange import fetch, open_stream
from tollway.proxy.http import Request
from tollway.proxy.upstream import UpstreamError, Upstreams, request_head

log = logging.getLogger("tollway.batches")

# The provider's batch states the gateway shows as they are while it runs.
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")
_ENDED = ("completed", "failed", "expired", "cancelled")
_ENDED_AT = {
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelled": "cancelled_at",
}
_JSON = b"application/json"


class ProviderRefused(Exception):
    """The provider refused a step for good (a 4xx): the batch fails with its message."""

    def __init__(self, status: int, body: bytes) -> None:
        try:
            error = orjson.loads(body).get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        self.code = str(error.get("code") or f"provider_{status}")
        self.message = str(error.get("message") or body[:200].decode("utf-8", "replace"))
        super().__init__(f"{status} {self.code}: {self.message}")


class ProviderBusy(Exception):
    """The provider cannot take a step now (408, 409, 429, 5xx): tried again later."""


class PassThrough:
    """Passed-through batches: chosen at creation, then taken through their steps."""

    def __init__(
        self, store: BatchStore, upstreams: Upstreams, holder_config: Callable[[], RuntimeConfig]
    ) -> None:
        self.store = store
        self.upstreams = upstreams
        self.config = holder_config
        self.poll_s = 5.0
        self.stopping = asyncio.Event()

    # -- at creation -------------------------------------------------------------------------

    async def choose(
        self, ctx: RequestContext, owner: str, endpoint: str, file_id: str
    ) -> str | None:
        """The provider a new batch is passed through to, or None (the gateway runs it).
        Raises the refusal a line would get when the key may not make the batch's calls."""
        if _provider(ctx.config, None) is None:
            return None  # no provider takes batches: the input need not be read here
        lines, problems = await asyncio.to_thread(self.store.read_lines, owner, file_id, endpoint)
        if problems:
            return None  # the gateway fails it with each problem, as for every batch
        firsts: dict[str, Line] = {}
        for line in lines:
            model = line_model(line)
            if model is None:
                return None
            firsts.setdefault(model, line)
        where = destination(ctx.config, ctx.key, set(firsts))
        if where is None:
            return None
        entry = ctx.config.routes.exact.get(endpoint, {}).get("POST")
        if entry is None:
            return None
        for model, line in firsts.items():
            if not await _admitted(ctx, entry, endpoint, model, line):
                return None
        return where.provider.name

    # -- the steps ---------------------------------------------------------------------------

    async def run(self, batch: Batch) -> None:
        """Take a passed-through batch through its steps until it ends or the worker stops."""
        while not self.stopping.is_set():
            fresh = await asyncio.to_thread(self.store.get, batch.owner, batch.id)
            if fresh is None or fresh.upstream is None:
                return
            batch, upstream = fresh, fresh.upstream
            provider = _provider(self.config(), upstream.provider)
            if provider is None:
                log.warning(
                    "batch %s: its provider %s is no longer configured; waiting for it",
                    batch.id,
                    upstream.provider,
                )
                await self._pause()
                continue
            try:
                if upstream.step == "upload":
                    await self._upload(batch, upstream, provider)
                elif upstream.step == "create":
                    await self._create(batch, upstream, provider)
                elif upstream.step == "poll":
                    await self._poll(batch, upstream, provider)
                elif upstream.step == "download":
                    await self._download(batch, upstream, provider)
                elif upstream.step == "meter":
                    await self._meter(batch, upstream)
                else:
                    await self._publish(batch, upstream)
                    return
            except ProviderRefused as refused:
                log.warning("batch %s: %s refused it: %s", batch.id, provider.name, refused)
                await self._fail(batch, refused.code, refused.message)
                return
            except (UpstreamError, ProviderBusy, OSError) as exc:
                # Unreachable, a 5xx, a 429: the same step again after a pause.
                log.warning("batch %s: %s: %s; trying again", batch.id, provider.name, exc)
                await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), self.poll_s)

    async def _step(self, batch: Batch, upstream: Upstream, **changes: Any) -> Batch:
        return await asyncio.to_thread(
            self.store.update, batch, upstream=_replace(upstream, **changes)
        )

    async def _upload(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        if batch.status == "cancelling":
            await self._end_here(batch, "cancelled")
            return
        lines, problems = await asyncio.to_thread(self.store.read_input, batch)
        if problems:
            await asyncio.to_thread(
                self.store.update, batch, status="failed", errors=problems, failed_at=_now()
            )
            return
        config = self.config()
        key = _key(config, batch)
        if batch.key_digest and key is None:
            await self._fail(batch, "key_deleted", "The batch's key no longer exists.")
            return
        where = destination(config, key, {m for m in map(line_model, lines) if m is not None})
        if where is None or where.provider.name != provider.name:
            # The configuration changed since the batch was made: its models go elsewhere now.
            await self._fail(
                batch,
                "routing_changed",
                "The batch's models are no longer all served by the provider it was passed to.",
            )
            return
        data = upstream_input(lines, batch.endpoint, where)
        filename = f"{batch.id}.jsonl"
        # An upload of an earlier attempt (stopped before its id was saved) is taken as it is.
        listing = await self._json(provider, b"GET", "/files?purpose=batch&limit=10000")
        file_id = find_file(listing, filename, len(data))
        if file_id is None:
            content_type, form = upload_form(filename, data)
            uploaded = await self._json(provider, b"POST", "/files", form, content_type)
            file_id = str(uploaded["id"])
        await asyncio.to_thread(
            self.store.update,
            batch,
            total=len(lines),
            upstream=_replace(upstream, file_id=file_id, step="create"),
        )

    async def _create(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        assert upstream.file_id is not None
        listing = await self._json(provider, b"GET", "/batches?limit=100")
        made = find_batch(listing, upstream.file_id)
        if made is None:
            if batch.status == "cancelling":
                await self._end_here(batch, "cancelled")
                return
            asked = {
                "input_file_id": upstream.file_id,
                "endpoint": batch.endpoint,
                "completion_window": batch.completion_window,
            }
            if batch.metadata is not None:
                asked["metadata"] = batch.metadata  # type: ignore[assignment]
            made = await self._json(provider, b"POST", "/batches", orjson.dumps(asked))
        batch = await self._step(batch, upstream, batch_id=str(made["id"]), step="poll")
        log.info("batch %s passed through to %s as %s", batch.id, provider.name, made["id"])

    async def _poll(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        assert upstream.batch_id is not None
        path = f"/batches/{upstream.batch_id}"
        seen = await self._json(provider, b"GET", path)
        status = seen.get("status")
        if batch.status == "cancelling" and status in ("validating", "in_progress"):
            seen = await self._json(provider, b"POST", path + "/cancel", b"")
            status = seen.get("status")
        counts = seen.get("request_counts") or {}
        changes: dict[str, Any] = {
            "total": int(counts.get("total") or batch.total),
            "completed": int(counts.get("completed") or 0),
            "failed": int(counts.get("failed") or 0),
        }
        for stamp in ("in_progress_at", "finalizing_at"):
            if isinstance(seen.get(stamp), int):
                changes[stamp] = seen[stamp]
        if status in _RUNNING:
            changes["status"] = status
            await asyncio.to_thread(self.store.update, batch, **changes)
            await self._pause()
            return
        if status not in _ENDED:
            raise ProviderRefused(502, b"The provider's batch has an unknown status.")
        errors = (seen.get("errors") or {}).get("data") or []
        ended = seen.get(_ENDED_AT[status])
        # The gateway finalizes it (its files come back) before it ends.
        changes["status"] = "finalizing"
        changes.setdefault("finalizing_at", batch.finalizing_at or _now())
        await asyncio.to_thread(
            self.store.update,
            batch,
            upstream=_replace(
                upstream,
                step="download",
                status=status,
                output_file_id=seen.get("output_file_id"),
                error_file_id=seen.get("error_file_id"),
                ended_at=ended if isinstance(ended, int) else _now(),
                errors=[e for e in errors if isinstance(e, dict)],
            ),
            **changes,
        )

    async def _download(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        for theirs, ours in (
            (upstream.output_file_id, batch.output_file_id),
            (upstream.error_file_id, batch.error_file_id),
        ):
            if theirs:
                path = self.store.files.data_path(batch.owner, ours)
                await self._save(provider, f"/files/{theirs}/content", path)
        await self._step(batch, upstream, step="meter")

    async def _save(self, provider: ProviderRuntime, path: str, into: Path) -> None:
        """A provider's file, written beside `into` and renamed whole onto it."""
        pool = self.upstreams.pool(provider)
        head = request_head(b"GET", provider.path(path), provider.host, provider.headers, (), 0)
        conn = await open_stream(pool, head, b"")
        if conn.status != 200:
            body = await conn.read_all()
            _check(conn.status, body)
        staged = into.with_suffix(".part")
        await asyncio.to_thread(into.parent.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(staged.open, "wb")
        try:
            while True:
                data = await conn.next_chunk()
                if data is None:
                    break
                await asyncio.to_thread(handle.write, data)
        except BaseException:
            conn.abort()
            raise
        finally:
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(os.replace, staged, into)

    async def _meter(self, batch: Batch, upstream: Upstream) -> None:
        """A call record for each line the provider answered, then the next step. The
        records are made with no pause between them and the step saved at once after, so
        a stop cannot leave them half made."""
        lines, _ = await asyncio.to_thread(self.store.read_input, batch)
        answered = await asyncio.to_thread(_answered, self.store, batch)
        config = self.config()
        entry = config.routes.exact.get(batch.endpoint, {}).get("POST")
        key = _key(config, batch)
        where = destination(config, key, {m for m in map(line_model, lines) if m is not None})
        by_id = {line.custom_id: line for line in lines}
        if entry is not None and where is not None:
            for custom_id, status, body in answered:
                line = by_id.get(custom_id)
                if line is not None and status:
                    _record(config, entry, key, batch, line, where, status, body)
        await self._step(batch, upstream, step="done")

    async def _publish(self, batch: Batch, upstream: Upstream) -> None:
        has_output, has_errors = await asyncio.to_thread(self.store.publish, batch)
        answered = await asyncio.to_thread(_answered, self.store, batch)
        ok = sum(1 for _, status, _ in answered if 200 <= status < 300)
        status = upstream.status or "failed"
        stamp = _ENDED_AT.get(status, "failed_at")
        await asyncio.to_thread(
            self.store.update,
            batch,
            status=status,
            has_output=has_output,
            has_errors=has_errors,
            completed=ok,
            failed=len(answered) - ok,
            errors=upstream.errors or batch.errors,
            **{stamp: upstream.ended_at or _now()},
        )
        log.info("batch %s %s at %s", batch.id, status, upstream.provider)

    async def _end_here(self, batch: Batch, status: str) -> None:
        """End a batch that never reached the provider (cancelled before its batch was
        made)."""
        await asyncio.to_thread(
            self.store.update,
            batch,
            status=status,
            upstream=_replace(batch.upstream, step="done", status=status),
            **{_ENDED_AT[status]: _now()},
        )

    async def _fail(self, batch: Batch, code: str, message: str) -> None:
        await asyncio.to_thread(
            self.store.update,
            batch,
            status="failed",
            failed_at=_now(),
            errors=[{"code": code, "message": message, "param": None, "line": None}],
        )

    async def _json(
        self,
        provider: ProviderRuntime,
        method: bytes,
        path: str,
        body: bytes = b"",
        content_type: bytes = _JSON,
    ) -> dict[str, Any]:
        """One call to the provider's Files or Batches API, with its credentials."""
        extra = ((b"content-type", content_type),) if method == b"POST" else ()
        head = request_head(
            method, provider.path(path), provider.host, provider.headers, extra, len(body)
        )
        status, _, answer = await fetch(self.upstreams.pool(provider), head, body)
        _check(status, answer)
        try:
            found = orjson.loads(answer)
        except orjson.JSONDecodeError:
            raise UpstreamError("protocol", f"{path}: the answer is not JSON") from None
        if not isinstance(found, dict):
            raise UpstreamError("protocol", f"{path}: the answer is not a JSON object")
        return found


def _check(status: int, body: bytes) -> None:
    if status in (408, 409, 429) or status >= 500:
        raise ProviderBusy(f"the provider answered {status}")
    if status >= 400:
        raise ProviderRefused(status, body)


async def _admitted(
    ctx: RequestContext, entry: RouteEntry, endpoint: str, model: str, line: Line
) -> bool:
    """Whether the batch's key may make `model`'s calls, checked as one of its lines would
    be by the route's body phase, and what the check took given back. Raises the refusal;
    False when a rate limit refused (it hides the checks behind it)."""
    if not entry.pipeline.body_phase:
        return True
    request = Request(
        "POST",
        endpoint,
        b"",
        [(b"content-type", _JSON)],
        line.body,
        "1.1",
        True,
        ctx.request.request_id,
        ctx.request.client_address,
    )
    probe = RequestContext(request, ctx.config, entry)
    probe.key = ctx.key
    probe.model = model
    verdict = entry.pipeline.body(probe)
    try:
        if isinstance(verdict, Pending):
            verdict = await verdict.waiter
    finally:
        # Nothing was called: the limits and budgets get back what the check took.
        probe.finished_at = time.monotonic()
        for policy in entry.pipeline.done_phase:
            if policy.name in ("rate_limit", "budget"):
                policy.on_done(probe)
    if isinstance(verdict, GatewayError):
        if probe.refused_by == "rate_limit":
            return False
        raise verdict
    return True


def _answered(store: BatchStore, batch: Batch) -> list[tuple[str, int, dict[str, Any] | None]]:
    found: list[tuple[str, int, dict[str, Any] | None]] = []
    for file_id in (batch.output_file_id, batch.error_file_id):
        try:
            data = store.files.data_path(batch.owner, file_id).read_bytes()
        except FileNotFoundError:
            continue
        found.extend(results(data))
    return found


def _record(
    config: RuntimeConfig,
    entry: RouteEntry,
    key: ClientKey | None,
    batch: Batch,
    line: Line,
    where: Destination,
    status: int,
    body: dict[str, Any] | None,
) -> None:
    """The call record of one line the provider answered, through the route's done phase (the
    record, and the cost added to the key's budgets)."""
    model = line_model(line) or ""
    deployment = where.deployments.get(model)
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
    ctx.deployment = deployment
    ctx.attempts = 1
    ctx.upstream_started_at = ctx.started_at
    ctx.finished_at = time.monotonic()
    ctx.status = status
    ok = 200 <= status < 300
    ctx.outcome = "completed" if ok else "upstream_error"
    api = entry.api
    if ok and body is not None and api is not None:
        ctx.usage = api.usage_of(orjson.dumps(body))
    if deployment is not None and deployment.info is not None and ctx.usage is not None:
        ctx.cost = batch_cost(deployment.info, ctx.usage, where.provider.kind.name)
    if not ok and isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("code") is not None:
            ctx.error_code = str(error["code"])
    limiter = _limiter(entry)
    if limiter is not None:
        ticket = limiter.afterwards(ctx)
        if ticket is not None:
            ctx.reserved = {"limits": ticket}
    entry.pipeline.done(ctx)


def _limiter(entry: RouteEntry) -> Limiter | None:
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


def _key(config: RuntimeConfig, batch: Batch) -> ClientKey | None:
    return config.keys.get(bytes.fromhex(batch.key_digest)) if batch.key_digest else None


def _provider(config: RuntimeConfig, name: str | None) -> ProviderRuntime | None:
    """The provider called `name` (None: the first that passes batches)."""
    routes = [*config.models.values(), *([config.wildcard] if config.wildcard else [])]
    for route in routes:
        for deployment in route.deployments:
            provider = deployment.provider
            if provider.name == name or (name is None and provider.batch_passthrough):
                return provider
    return None


def _replace(upstream: Upstream | None, **changes: Any) -> Upstream:
    assert upstream is not None
    return replace(upstream, **changes)


def _now() -> int:
    return int(time.time())
