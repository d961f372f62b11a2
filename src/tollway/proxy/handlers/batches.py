"""OpenAI's Batches API, run by the gateway for every provider.

`POST /v1/batches` takes a JSONL file uploaded with the Files API (purpose `batch`); the
gateway checks it and runs its lines itself, each as a call of the batch's own key through the
worker's own router (in process: no socket, no second key): the key's subscriptions, rate
limits and budget apply to every line, and every line is a call record. A line refused for a
rate limit waits for it and is tried again, so the batch goes at the pace the app's limits
allow; a line refused for a spent budget, or failed, is written to the error file.

One worker of the node runs a batch at a time (it holds the batch's lock file); the others,
and a replacement after a crash, take over an unfinished batch from where its output files
say it is (batches/jobs.py). A cancelled batch stops starting lines, lets those under way end,
and keeps what they wrote.

A batch whose every line goes to one provider with a Batch API is passed through to it
instead (batch_passthrough.py): the same lock, another runner; such batches, which mostly
wait on their provider, do not count among the batches a worker runs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from tollway.batches.files import owner_of
from tollway.batches.jobs import ACTIVE, ENDPOINTS, Batch, BatchStore, Line
from tollway.errors import GatewayError, error_payload
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.batch_passthrough import PassThrough
from tollway.proxy.http import Request
from tollway.proxy.replies import finish, send_error

if TYPE_CHECKING:
    from tollway.config.snapshot import SnapshotHolder

log = logging.getLogger("tollway.batches")

# Lines of one batch in flight at once, and batches a worker runs at once.
LINES_AT_ONCE = 4
BATCHES_AT_ONCE = 2
# Rate-limit waits one line may take before it is written as refused.
_MOST_WAITS = 1000
# A rate limit refusal asking for a longer wait than this ends the line (a spent budget).
_LONGEST_WAIT_S = 60.0
_SCAN_S = 1.0

Dispatch = Callable[..., Awaitable[None] | None]


class _LineAnswer:
    """Stands for a client connection while one batch line is answered in process."""

    __slots__ = ("answer", "call", "closed")

    def __init__(self) -> None:
        self.answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.call: Any = None
        self.closed = False

    def attach(self, call: Any) -> None:
        self.call = call

    def send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        if not self.answer.done():
            self.answer.set_result((status, headers, body))

    def send_json(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.send(status, list(headers or ()), body)

    def send_error(self, status: int, message: str, **details: Any) -> None:
        details.pop("headers", None)
        self.send_json(status, orjson.dumps(error_payload(message, **details)))

    def abort(self) -> None:
        self.send(0, [], b'"the call was cut off"')


class Batches:
    """The Batches API's handler, and the worker's runner of the node's batches."""

    def __init__(
        self,
        store: BatchStore | None,
        holder: SnapshotHolder,
        passthrough: PassThrough | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        # None: every batch is run by the gateway.
        self.passthrough = passthrough
        self.dispatch: Dispatch | None = None
        self.running: dict[str, asyncio.Task[None]] = {}
        # The ids among `running` of batches passed through to their provider.
        self.passing: set[str] = set()
        self.stopping = False
        self._scanner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # The worker's loop, once the runner starts (the API's thread wakes the runner on it).
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the API ---------------------------------------------------------------------------

    async def handle(self, ctx: RequestContext, conn: HttpConnection) -> None:
        try:
            request = ctx.request
            if request.method == "POST" and not request.path.removeprefix("/v1/batches").strip("/"):
                body = await self._create(ctx)
            else:
                # The batches and files are on disk: read and written off the event loop.
                body = await asyncio.to_thread(self._answer, ctx)
            ctx.status = 200
            ctx.outcome = "completed"
            conn.send_json(200, orjson.dumps(body))
        except GatewayError as error:
            ctx.outcome = "refused"
            send_error(ctx, conn, error)
        finally:
            finish(ctx)

    def _store(self) -> BatchStore:
        if self.store is None:
            raise GatewayError(501, "Batches need the gateway's state folder.", code="unsupported")
        return self.store

    def _answer(self, ctx: RequestContext) -> dict[str, Any]:
        store = self._store()
        request = ctx.request
        owner = owner_of(ctx.key)
        rest = request.path.removeprefix("/v1/batches").strip("/")
        if not rest:
            return self._list(ctx, store, owner)
        batch_id, _, action = rest.partition("/")
        batch = store.get(owner, batch_id)
        if batch is None:
            raise GatewayError(
                404, f"No batch found with id '{batch_id}'.", param="batch_id", code=None
            )
        if action == "cancel" and request.method == "POST":
            return self._cancel(store, batch)
        if not action and request.method == "GET":
            return batch.as_openai()
        raise GatewayError(404, f"Invalid URL ({request.method} {request.path})")

    async def _create(self, ctx: RequestContext) -> dict[str, Any]:
        store = self._store()
        owner = owner_of(ctx.key)
        endpoint, file_id, metadata = await asyncio.to_thread(_asked, ctx, store, owner)
        provider = None
        if self.passthrough is not None:
            provider = await self.passthrough.choose(ctx, owner, endpoint, file_id)
        # Its lines run as the key that made it: the key's digest, as the snapshot holds it.
        digest = next((found.hex() for found, key in ctx.config.keys.items() if key is ctx.key), "")
        batch = await asyncio.to_thread(
            store.create,
            owner,
            endpoint,
            file_id,
            digest,
            ctx.request.client_address,
            metadata,
            provider,
        )
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        return batch.as_openai()

    def _list(self, ctx: RequestContext, store: BatchStore, owner: str) -> dict[str, Any]:
        query = parse_qs(ctx.request.query.decode("latin-1"))
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise GatewayError(400, "'limit' must be from 1 to 100.", param="limit")
        found = list(reversed(store.of_owner(owner)))
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [b.id for b in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        page = found[:limit]
        return {
            "object": "list",
            "data": [b.as_openai() for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(found) > limit,
        }

    def _cancel(self, store: BatchStore, batch: Batch) -> dict[str, Any]:
        if batch.status not in ACTIVE:
            raise GatewayError(
                409, f"Cannot cancel a batch with status '{batch.status}'.", code="invalid_state"
            )
        if batch.status != "cancelling":
            batch = store.request_cancel(batch)
        return batch.as_openai()

    # -- the runner ------------------------------------------------------------------------

    def start(self, dispatch: Dispatch) -> None:
        """Begin running the node's batches (those this worker can lock)."""
        if self.store is None:
            return
        self.dispatch = dispatch
        self._loop = asyncio.get_running_loop()
        self._scanner = self._loop.create_task(self._scan())

    async def stop(self, timeout_s: float) -> None:
        """No new line starts; those under way may end (and be written) for `timeout_s`,
        then are dropped unwritten (run again by whoever takes the batch up)."""
        self.stopping = True
        if self.passthrough is not None:
            self.passthrough.stopping.set()  # its batches wait on their provider: no need
        if self._scanner is not None:
            self._scanner.cancel()
        running = list(self.running.values())
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        for task in running:
            task.cancel()
        await asyncio.gather(
            *(t for t in (self._scanner, *running) if t is not None), return_exceptions=True
        )

    async def _scan(self) -> None:
        store = self.store
        assert store is not None
        while not self.stopping:
            try:
                active = await asyncio.to_thread(store.active)
            except OSError as exc:
                log.warning("cannot read the batches: %s", exc)
                active = []
            for batch in active:
                if batch.id in self.running:
                    continue
                passed = batch.upstream is not None and self.passthrough is not None
                if not passed and len(self.running) - len(self.passing) >= BATCHES_AT_ONCE:
                    continue
                try:
                    lock = await asyncio.to_thread(_lock, store, batch)
                    # Read again under the lock: it may have ended since the list was read.
                    fresh = await asyncio.to_thread(store.get, batch.owner, batch.id)
                except (OSError, ValueError) as exc:
                    log.warning("cannot take up batch %s: %s", batch.id, exc)
                    continue
                if lock is None:
                    continue
                if fresh is None or fresh.status not in ACTIVE:
                    lock.close()
                    continue
                if passed:
                    self.passing.add(fresh.id)
                self.running[fresh.id] = asyncio.get_running_loop().create_task(
                    self._pass(fresh, lock) if passed else self._run(fresh, lock)
                )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _SCAN_S)

    async def _run(self, batch: Batch, lock: IO[bytes]) -> None:
        store = self.store
        assert store is not None
        try:
            lines, problems = await asyncio.to_thread(store.read_input, batch)
            if problems:
                await asyncio.to_thread(
                    store.update,
                    batch,
                    status="failed",
                    errors=problems,
                    failed_at=int(time.time()),
                )
                return
            if batch.status == "validating":
                batch = await asyncio.to_thread(
                    store.update,
                    batch,
                    status="in_progress",
                    in_progress_at=int(time.time()),
                    total=len(lines),
                )
            succeeded, failed = await asyncio.to_thread(store.answered, batch)
            batch = await asyncio.to_thread(
                store.update, batch, completed=len(succeeded), failed=len(failed)
            )
            done = succeeded | failed
            todo = [line for line in lines if line.custom_id not in done]
            await self._lines(batch, todo)
            if self.stopping:
                return  # taken up again from its output files
            fresh = await asyncio.to_thread(store.get, batch.owner, batch.id)
            batch = fresh or batch
            has_output, has_errors = await asyncio.to_thread(store.publish, batch)
            now = int(time.time())
            ended = "cancelled" if batch.status == "cancelling" else "completed"
            times = (
                {"cancelled_at": now}
                if ended == "cancelled"
                else {
                    "finalizing_at": now,
                    "completed_at": now,
                }
            )
            await asyncio.to_thread(
                store.update,
                batch,
                status=ended,
                has_output=has_output,
                has_errors=has_errors,
                **times,
            )
            log.info("batch %s %s: %d lines", batch.id, ended, len(lines))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch %s failed", batch.id)
            await _failed_here(store, batch)
        finally:
            lock.close()
            self.running.pop(batch.id, None)

    async def _pass(self, batch: Batch, lock: IO[bytes]) -> None:
        """A batch passed through to its provider, taken through its steps."""
        assert self.passthrough is not None
        try:
            await self.passthrough.run(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The gateway's own failure: the batch at the provider is left as it is (its id
            # is in the batch's state, and in the log).
            log.exception("batch %s failed (passed through: %s)", batch.id, batch.upstream)
            assert self.store is not None
            await _failed_here(self.store, batch)
        finally:
            lock.close()
            self.running.pop(batch.id, None)
            self.passing.discard(batch.id)

    async def _lines(self, batch: Batch, todo: list[Line]) -> None:
        store = self.store
        assert store is not None
        slots = asyncio.Semaphore(LINES_AT_ONCE)
        pending: set[asyncio.Task[None]] = set()
        for line in todo:
            await slots.acquire()
            current = await asyncio.to_thread(store.get, batch.owner, batch.id)
            if self.stopping or current is None or current.status != "in_progress":
                slots.release()
                break
            task = asyncio.get_running_loop().create_task(self._line(batch, line))
            task.add_done_callback(lambda _: slots.release())
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    async def _line(self, batch: Batch, line: Line) -> None:
        store = self.store
        assert store is not None and self.dispatch is not None
        config = self.holder.current
        key = config.keys.get(bytes.fromhex(batch.key_digest)) if batch.key_digest else None
        request_id = f"{batch.id}-{line.number}"
        try:
            if batch.key_digest and key is None:
                status, body = 0, b'"the batch\'s key no longer exists"'
            else:
                for _ in range(_MOST_WAITS):
                    status, headers, body = await self._call(batch, line, key, request_id)
                    wait = _retry_after(headers) if status == 429 else None
                    if wait is None or wait > _LONGEST_WAIT_S or self.stopping:
                        break
                    await asyncio.sleep(wait)
            await asyncio.to_thread(store.record, batch, line, status, body, request_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch %s: line %d failed to run", batch.id, line.number)
            failure = b'"the gateway failed to run this line"'
            try:
                await asyncio.to_thread(store.record, batch, line, 0, failure, request_id)
            except OSError:
                log.exception("batch %s: line %d could not be written", batch.id, line.number)

    async def _call(
        self, batch: Batch, line: Line, key: Any, request_id: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        assert self.dispatch is not None
        request = Request(
            "POST",
            batch.endpoint,
            b"",
            [(b"content-type", b"application/json"), (b"x-tollway-batch", batch.id.encode())],
            line.body,
            "1.1",
            True,
            request_id.encode(),
            batch.client_address,
        )
        answer = _LineAnswer()
        work = self.dispatch(request, answer, key)
        if work is not None:
            await work
        return await answer.answer


async def _failed_here(store: BatchStore, batch: Batch) -> None:
    """The batch ended as failed by the gateway's own fault (not one of its lines')."""
    await asyncio.to_thread(
        store.update,
        batch,
        status="failed",
        failed_at=int(time.time()),
        errors=[{"code": "server_error", "message": "The gateway failed to run it."}],
    )


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    for name, value in headers:
        if name == b"retry-after":
            try:
                return max(0.05, float(value))
            except ValueError:
                return None
    return None


def _lock(store: BatchStore, batch: Batch) -> IO[bytes] | None:
    """The batch's lock, if no other worker holds it (released when closed, or when the
    holder dies)."""
    path = store.files.folder(batch.owner) / f"{batch.id}.lock"
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    os.set_inheritable(handle.fileno(), False)
    return handle


def _asked(
    ctx: RequestContext, store: BatchStore, owner: str
) -> tuple[str, str, dict[str, str] | None]:
    """A new batch's endpoint, input file and metadata, checked (run in a worker thread)."""
    try:
        asked = orjson.loads(ctx.request.body)
    except orjson.JSONDecodeError:
        raise GatewayError(400, "The body is not JSON.", code="invalid_json") from None
    if not isinstance(asked, dict):
        raise GatewayError(400, "The body must be a JSON object.", code="invalid_json")
    endpoint = asked.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise GatewayError(
            400,
            f"'endpoint' must be one of {', '.join(ENDPOINTS)}.",
            param="endpoint",
            code="invalid_value",
        )
    if asked.get("completion_window") != "24h":
        raise GatewayError(400, "'completion_window' must be '24h'.", param="completion_window")
    file_id = asked.get("input_file_id")
    stored = store.files.get(owner, file_id) if isinstance(file_id, str) else None
    if stored is None:
        raise GatewayError(400, f"No such File object: {file_id}", param="input_file_id", code=None)
    if stored.purpose != "batch":
        raise GatewayError(
            400,
            "The input file must be uploaded with purpose 'batch'.",
            param="input_file_id",
        )
    metadata = asked.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(v, str) for v in metadata.values())
    ):
        raise GatewayError(400, "'metadata' must map at most 16 keys to strings.", param="metadata")
    return endpoint, stored.id, metadata
