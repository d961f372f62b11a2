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

Once the provider's batch exists (step poll and later) the provider runs and bills it,
whatever the gateway does: a refusal (a 401 after a key rotation, a 404) or an answer the
gateway cannot read is then tried again at the poll pace, never taken as the batch's end. Past
the batch's window and `GIVE_UP_S`, the gateway cancels it at the provider and still
downloads and meters what ran; a file it still cannot download then is left out (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from tollway.batches.jobs import ACTIVE, Batch, BatchStore, Line, Upstream
from tollway.batches.passthrough import (
    ProviderBatch,
    destination,
    estimated_cost,
    find_batch,
    find_file,
    line_model,
    read_batch,
    survey,
    write_upload,
)
from tollway.config.snapshot import ClientKey, ProviderRuntime, RuntimeConfig
from tollway.policies.context import RequestContext
from tollway.proxy.handlers.batch_admission import admitted, budget_fits
from tollway.proxy.handlers.batch_metering import (
    deployment_state,
    key_state,
    limiter_of,
    meter,
)
from tollway.proxy.handlers.batch_provider import (
    ProviderBusy,
    ProviderCalls,
    ProviderRefused,
    Unreadable,
)
from tollway.proxy.upstream import UpstreamError, Upstreams

log = logging.getLogger("tollway.batches")

# The provider's batch states the gateway shows as they are while it runs.
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")
_ENDED_AT = {
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelled": "cancelled_at",
}
# After its window, how long a batch that cannot be taken on waits before the gateway gives
# up on it: the provider's batch cancelled, or the batch failed when no provider is left.
GIVE_UP_S = 3600
# The most pages of the provider's batch list read looking for an earlier attempt's batch.
_MOST_PAGES = 100


class PassThrough:
    """Passed-through batches: chosen at creation, then taken through their steps."""

    def __init__(
        self, store: BatchStore, upstreams: Upstreams, holder_config: Callable[[], RuntimeConfig]
    ) -> None:
        self.store = store
        self.calls = ProviderCalls(upstreams)
        self.config = holder_config
        self.poll_s = 5.0
        self.stopping = asyncio.Event()

    # -- at creation -------------------------------------------------------------------------

    async def choose(
        self, ctx: RequestContext, owner: str, endpoint: str, file_id: str
    ) -> str | None:
        """The provider a new batch is passed through to, or None (the gateway runs it).
        Raises the refusal a line would get when the key may not make the batch's calls, and
        a budget's when the whole batch's estimated cost does not fit in what is left."""
        if _provider(ctx.config, None) is None:
            return None  # no provider takes batches: the input need not be read here
        entry = ctx.config.routes.exact.get(endpoint, {}).get("POST")
        if entry is None:
            return None
        limiter = limiter_of(entry)
        operation = entry.api.operation if entry.api is not None else ""
        output_default = limiter.output_estimate if limiter is not None else 1024

        def read() -> tuple[list[Line], Any]:
            lines, problems = self.store.read_lines(owner, file_id, endpoint)
            return lines, None if problems else survey(lines, operation, output_default)

        lines, demands = await asyncio.to_thread(read)
        del lines
        if not demands:
            return None  # problems (the gateway fails it with each), or a line without a model
        where = destination(ctx.config, ctx.key, set(demands))
        if where is None:
            return None
        for model, demand in demands.items():
            if not await admitted(ctx, entry, endpoint, model, demand.first):
                return None
        if limiter is not None:
            costs = {
                m: estimated_cost(d, where.deployments[m].info, where.provider.kind.name)
                for m, d in demands.items()
            }
            await budget_fits(ctx, entry, limiter, costs, demands)
        return where.provider.name

    # -- the steps ---------------------------------------------------------------------------

    async def _to_gateway(self, batch: Batch, why: str) -> None:
        """Hand a batch nothing of which reached the provider to the gateway's own runner."""
        log.warning("batch %s: %s: run by the gateway", batch.id, why)
        await asyncio.to_thread(self.store.update, batch, upstream=None)

    async def run(self, batch: Batch) -> None:
        """Take a passed-through batch through its steps until it ends (or leaves the
        provider for the gateway) or the worker stops."""
        while not self.stopping.is_set():
            fresh = await asyncio.to_thread(self.store.get, batch.owner, batch.id)
            if fresh is None or fresh.upstream is None or fresh.status not in ACTIVE:
                return  # ended (or failed by a step), or handed to the gateway
            batch, upstream = fresh, fresh.upstream
            provider = _provider(self.config(), upstream.provider)
            if provider is None and upstream.step == "upload":
                # Nothing reached the provider: the gateway runs the batch instead.
                await self._to_gateway(batch, f"{upstream.provider} is no longer configured")
                return
            if provider is None and upstream.step in ("meter", "done"):
                # Its files are down: metering and publishing need nothing of the provider.
                await self._finish(batch, upstream)
                return
            if provider is None:
                await self._orphaned(batch, upstream)
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
                else:
                    await self._finish(batch, upstream)
                    return
            except ProviderRefused as refused:
                log.warning(
                    "batch %s: %s refused %s: %s",
                    batch.id,
                    provider.name,
                    upstream.step,
                    refused.detail,
                )
                if upstream.step in ("upload", "create"):
                    # Nothing runs at the provider yet: the refusal is the batch's end.
                    if upstream.file_id is not None:
                        await self.calls.delete(provider, upstream.file_id, batch.id)
                    await self._fail(batch, refused.code, refused.message)
                    return
                # The provider runs (and bills) its batch whatever it answers us now.
                await self._troubled(batch, upstream, provider)
            except (UpstreamError, ProviderBusy, Unreadable, OSError) as exc:
                # Unreachable, a 5xx, a 429, an answer not understood: again after a pause.
                log.warning("batch %s: %s: %s; trying again", batch.id, provider.name, exc)
                if upstream.step in ("poll", "download"):
                    await self._troubled(batch, upstream, provider)
                else:
                    await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), self.poll_s)

    async def _step(self, batch: Batch, upstream: Upstream, **changes: Any) -> Batch:
        return await asyncio.to_thread(
            self.store.update, batch, upstream=_replace(upstream, **changes)
        )

    async def _orphaned(self, batch: Batch, upstream: Upstream) -> None:
        """Its provider is no longer configured: waited for until the batch's window (and
        GIVE_UP_S) is past, then failed."""
        if _now() < (batch.expires_at or batch.created_at) + GIVE_UP_S:
            log.warning(
                "batch %s: its provider %s is no longer configured; waiting for it",
                batch.id,
                upstream.provider,
            )
            await self._pause()
            return
        log.error(
            "batch %s: its provider %s is no longer configured; failed (provider batch %s, "
            "its lines not recorded)",
            batch.id,
            upstream.provider,
            upstream.batch_id,
        )
        await self._fail(
            batch,
            "provider_unavailable",
            f"The provider '{upstream.provider}' this batch was passed to is no longer "
            "configured: the batch could not be finished.",
        )

    async def _troubled(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        """A provider batch that cannot be read or downloaded now: tried again at the poll
        pace; past its window and GIVE_UP_S, given up (cancelled, then what ran taken)."""
        late = _now() - (batch.expires_at or batch.created_at) - GIVE_UP_S
        if late > 0 and upstream.step == "poll" and upstream.batch_id is not None:
            log.error(
                "batch %s: giving up on %s at %s: cancelling it",
                batch.id,
                upstream.batch_id,
                provider.name,
            )
            with contextlib.suppress(
                ProviderRefused, ProviderBusy, Unreadable, UpstreamError, OSError
            ):
                await self.calls.json(
                    provider, b"POST", f"/batches/{upstream.batch_id}/cancel", b""
                )
            if late > GIVE_UP_S:
                log.error(
                    "batch %s: %s at %s never readable: failed, its lines not recorded",
                    batch.id,
                    upstream.batch_id,
                    provider.name,
                )
                await self._fail(
                    batch,
                    "provider_unavailable",
                    f"The provider '{provider.name}' did not answer for this batch: it could "
                    "not be finished.",
                )
                return
        await self._pause()

    async def _upload(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        if batch.status == "cancelling":
            await self._end_here(batch, "cancelled")
            return
        config = self.config()
        key = _key(config, batch)
        if batch.key_digest and key is None:
            await self._fail(batch, "key_deleted", "The batch's key no longer exists.")
            return
        filename = f"{batch.id}.jsonl"
        staged = await asyncio.to_thread(tempfile.mkstemp, ".form", "tollway-batch-")
        os.close(staged[0])
        form = Path(staged[1])
        try:
            built = await asyncio.to_thread(self._form, batch, config, key, filename, form)
            if isinstance(built, list):  # the input's problems
                await asyncio.to_thread(
                    self.store.update, batch, status="failed", errors=built, failed_at=_now()
                )
                return
            total, models, content_type, size = built
            if models is None or models[0] != provider.name:
                # The configuration changed since the batch was made, before anything reached
                # the provider: the gateway runs it instead, as it would a batch made now.
                await self._to_gateway(batch, f"its models are no longer all at {provider.name}")
                return
            # An upload of an earlier attempt (stopped before its id was saved) is taken.
            listing = await self.calls.json(provider, b"GET", "/files?purpose=batch&limit=10000")
            file_id = find_file(listing, filename, size)
            created = None
            if file_id is None:
                uploaded = await self.calls.upload(provider, form, content_type)
                file_id = uploaded.get("id")
                if not isinstance(file_id, str):
                    raise Unreadable("/files: the upload's answer has no id")
                made = uploaded.get("created_at")
                created = made if isinstance(made, int) else None
        finally:
            await asyncio.to_thread(form.unlink, True)
        await asyncio.to_thread(
            self.store.update,
            batch,
            total=total,
            upstream=_replace(
                upstream,
                file_id=file_id,
                file_created_at=created,
                models=models[1],
                key=key_state(key),
                step="create",
            ),
        )

    def _form(
        self, batch: Batch, config: RuntimeConfig, key: ClientKey | None, filename: str, form: Path
    ) -> Any:
        """Off the event loop: the batch's upload written to `form`, with what metering will
        need of its deployments; or the input's problems."""
        lines, problems = self.store.read_input(batch)
        if problems:
            return problems
        where = destination(config, key, {m for m in map(line_model, lines) if m is not None})
        if where is None:
            return len(lines), None, b"", 0
        content_type, size = write_upload(lines, batch.endpoint, where, filename, form)
        saved = {m: deployment_state(where, m) for m in where.deployments}
        return len(lines), (where.provider.name, saved), content_type, size

    async def _create(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        assert upstream.file_id is not None
        made = await self._earlier(provider, upstream)
        if made is None:
            if batch.status == "cancelling":
                await self.calls.delete(provider, upstream.file_id, batch.id)
                await self._end_here(batch, "cancelled")
                return
            asked: dict[str, Any] = {
                "input_file_id": upstream.file_id,
                "endpoint": batch.endpoint,
                "completion_window": batch.completion_window,
            }
            if batch.metadata is not None:
                asked["metadata"] = batch.metadata
            made = read_batch(
                await self.calls.json(provider, b"POST", "/batches", orjson.dumps(asked))
            )
        if made.id is None:
            raise Unreadable("/batches: the batch has no id")
        batch = await self._step(batch, upstream, batch_id=made.id, step="poll")
        log.info("batch %s passed through to %s as %s", batch.id, provider.name, made.id)

    async def _earlier(self, provider: ProviderRuntime, upstream: Upstream) -> ProviderBatch | None:
        """A provider batch of our input file made before a restart, page by page back to
        the file's upload."""
        assert upstream.file_id is not None
        after: str | None = None
        for _ in range(_MOST_PAGES):
            path = "/batches?limit=100" + (f"&after={after}" if after else "")
            listing = await self.calls.json(provider, b"GET", path)
            found, after = find_batch(listing, upstream.file_id, upstream.file_created_at)
            if found is not None:
                return read_batch(found)
            if after is None:
                return None
        return None

    async def _poll(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        assert upstream.batch_id is not None
        path = f"/batches/{upstream.batch_id}"
        seen = read_batch(await self.calls.json(provider, b"GET", path))
        if batch.status == "cancelling" and seen.status in ("validating", "in_progress"):
            try:
                cancelled = read_batch(
                    await self.calls.json(provider, b"POST", path + "/cancel", b"")
                )
                seen = cancelled if cancelled.status is not None else seen
            except (ProviderRefused, ProviderBusy, Unreadable) as exc:
                # It may have ended meanwhile: read again rather than fail.
                log.warning("batch %s: cancel at %s refused: %s", batch.id, provider.name, exc)
                seen = read_batch(await self.calls.json(provider, b"GET", path))
        changes: dict[str, Any] = {
            "total": seen.total if seen.total is not None else batch.total,
            "completed": seen.completed,
            "failed": seen.failed,
        }
        for stamp in ("in_progress_at", "finalizing_at"):
            if stamp in seen.stamps:
                changes[stamp] = seen.stamps[stamp]
        if seen.status in _RUNNING:
            changes["status"] = seen.status
            await asyncio.to_thread(self.store.update, batch, **changes)
            await self._pause()
            return
        if seen.status not in _ENDED_AT:
            raise Unreadable(f"{path}: unknown status {seen.status!r}")
        ended = seen.stamps.get(_ENDED_AT[seen.status])
        # The gateway finalizes it (its files come back) before it ends.
        changes["status"] = "finalizing"
        changes.setdefault("finalizing_at", batch.finalizing_at or _now())
        await asyncio.to_thread(
            self.store.update,
            batch,
            upstream=_replace(
                upstream,
                step="download",
                status=seen.status,
                output_file_id=seen.output_file_id,
                error_file_id=seen.error_file_id,
                ended_at=ended if ended is not None else _now(),
                errors=seen.errors,
            ),
            **changes,
        )

    async def _download(self, batch: Batch, upstream: Upstream, provider: ProviderRuntime) -> None:
        late = _now() > (batch.expires_at or batch.created_at) + GIVE_UP_S
        for theirs, ours in (
            (upstream.output_file_id, batch.output_file_id),
            (upstream.error_file_id, batch.error_file_id),
        ):
            if not theirs:
                continue
            path = self.store.files.data_path(batch.owner, ours)
            if await asyncio.to_thread(path.exists):
                continue  # down already, before a stop
            try:
                await self.calls.save(provider, f"/files/{theirs}/content", path)
            except (ProviderRefused, ProviderBusy, Unreadable, UpstreamError, OSError):
                if not late:
                    raise
                log.error(
                    "batch %s: file %s never came down from %s: left out",
                    batch.id,
                    theirs,
                    provider.name,
                )
        await self._step(batch, upstream, step="meter")
        # The client's data is not left at the provider once the gateway has it.
        for file_id in (upstream.file_id, upstream.output_file_id, upstream.error_file_id):
            if file_id:
                await self.calls.delete(provider, file_id, batch.id)

    async def _finish(self, batch: Batch, upstream: Upstream) -> None:
        """Meter (unless done before a stop), then publish."""
        if upstream.step == "meter":
            upstream = await meter(self.store, batch, upstream, self.config())
            batch = await self._step(batch, upstream, step="done")
        await self._publish(batch, _replace(batch.upstream))

    async def _publish(self, batch: Batch, upstream: Upstream) -> None:
        has_output, has_errors = await asyncio.to_thread(self.store.publish, batch)
        status = upstream.status or "failed"
        stamp = _ENDED_AT.get(status, "failed_at")
        await asyncio.to_thread(
            self.store.update,
            batch,
            status=status,
            has_output=has_output,
            has_errors=has_errors,
            completed=upstream.completed,
            failed=upstream.failed,
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
