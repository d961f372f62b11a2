"""The steps of a passed-through batch against a scripted provider (its Files and Batches
calls answered in process): a batch that cannot go up ends (or goes to the gateway) instead of
looping; once the provider's batch exists, refusals and odd answers are waited out; the
client never sees the provider's text; metering uses what was saved at upload, in chunks;
the whole batch's cost is checked against the budget; the provider's list is paged; an
orphaned batch fails after its window; the client's files are deleted at the provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.batches.files import FileStore, StoredFile, new_id
from tollway.batches.jobs import Batch, BatchStore
from tollway.batches.passthrough import find_batch, read_batch
from tollway.config.compile import compile_config, hash_key
from tollway.config.load import validate_config
from tollway.config.snapshot import RuntimeConfig
from tollway.errors import GatewayError
from tollway.policies.context import RequestContext
from tollway.proxy.handlers import batch_metering
from tollway.proxy.handlers.batch_passthrough import PassThrough
from tollway.proxy.handlers.batch_provider import JSON, ProviderCalls, ProviderRefused
from tollway.proxy.http import Request

ENDPOINT = "/v1/chat/completions"
LEAKY = b'{"error": {"message": "Incorrect API key provided: sk-proj-****abcd", "code": "x"}}'


def compiled(models: dict[str, Any] | None = None, budget: str | None = None) -> RuntimeConfig:
    data: dict[str, Any] = {
        "providers": {
            "oa": {"type": "openai", "api_key_env": "K"},
            "compat": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
        },
        "models": models
        or {"cheap": {"deployments": [{"provider": "oa", "model": "gpt-4o-mini"}]}},
        "keys": [{"name": "k", "key_sha256": hash_key("sk-k")}],
    }
    if budget is not None:
        data["budgets"] = {"rules": [{"scope": "key", "amount_usd": budget}]}
    return compile_config(validate_config(data), {"K": "sk-provider"})


class Provider(ProviderCalls):
    """OpenAI's Files and Batches APIs, scripted: `answers` maps (method, path) to a function
    of the call's body (it may raise what the real calls raise)."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []
        self.answers: dict[tuple[bytes, str], Callable[[bytes], dict[str, Any]]] = {}
        self.contents: dict[str, bytes] = {}
        self.uploaded = b""
        # Called as each file comes down.
        self.on_save: Callable[[], None] = lambda: None

    async def json(
        self, provider: Any, method: bytes, path: str, body: bytes = b"", content_type: bytes = JSON
    ) -> dict[str, Any]:
        self.calls.append((method, path))
        answer = self.answers.get((method, path.partition("?")[0]))
        if answer is None:
            return {"object": "list", "data": [], "has_more": False}
        return answer(body)

    async def upload(self, provider: Any, form: Path, content_type: bytes) -> dict[str, Any]:
        self.uploaded = form.read_bytes()
        return await self.json(provider, b"POST", "/files")

    async def save(self, provider: Any, path: str, into: Path) -> int:
        self.calls.append((b"GET", path))
        into.parent.mkdir(parents=True, exist_ok=True)
        into.write_bytes(self.contents[path])
        self.on_save()
        return 0


def make(
    tmp_path: Path, config: RuntimeConfig, lines: list[bytes], **changes: Any
) -> tuple[PassThrough, Provider, Batch]:
    files = FileStore(tmp_path)
    store = BatchStore(files)
    file_id = new_id("file-")
    path = files.data_path("k", file_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    files.describe("k", StoredFile(file_id, "in.jsonl", "batch", path.stat().st_size, 0))
    [digest] = config.keys
    batch = store.create("k", ENDPOINT, file_id, digest.hex(), "1.2.3.4", None, "oa")
    if changes:
        batch = store.update(batch, **changes)
    passing = PassThrough(store, None, lambda: config)  # type: ignore[arg-type]
    provider = Provider()
    passing.calls = provider
    passing.poll_s = 0.01
    return passing, provider, batch


def line(i: int, model: str = "cheap", content: str = "hi") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    request = {"custom_id": f"l{i}", "method": "POST", "url": ENDPOINT, "body": body}
    return orjson.dumps(request) + b"\n"


def ok(**seen: Any) -> Callable[[bytes], dict[str, Any]]:
    return lambda _: seen


def refused(status: int) -> Callable[[bytes], dict[str, Any]]:
    def answer(_: bytes) -> dict[str, Any]:
        raise ProviderRefused("oa", status, LEAKY)

    return answer


async def run(passing: PassThrough, batch: Batch, timeout_s: float = 5.0) -> None:
    await asyncio.wait_for(passing.run(batch), timeout_s)


# -- 1: a batch that cannot go up ends at once ---------------------------------------------


def test_an_input_gone_fails_the_batch_once(tmp_path: Path) -> None:
    passing, provider, batch = make(tmp_path, compiled(), [line(0)])
    passing.store.files.delete("k", batch.input_file_id)
    asyncio.run(run(passing, batch, 2.0))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "failed"
    assert [e["code"] for e in done.errors] == ["missing_file"]
    assert provider.calls == []


def test_a_deleted_key_fails_the_batch_once(tmp_path: Path) -> None:
    config = compiled()
    passing, _, batch = make(tmp_path, config, [line(0)])
    passing.config = lambda: replace(config, keys={})
    asyncio.run(run(passing, batch, 2.0))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "failed"
    assert [e["code"] for e in done.errors] == ["key_deleted"]


def test_routing_changed_before_upload_hands_the_batch_to_the_gateway(tmp_path: Path) -> None:
    passing, provider, batch = make(tmp_path, compiled(), [line(0)])
    moved = compiled({"cheap": {"deployments": [{"provider": "compat", "model": "gpt-4o-mini"}]}})
    passing.config = lambda: moved
    asyncio.run(run(passing, batch, 2.0))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.upstream is None and done.status == "validating"
    assert provider.calls == []


# -- 2, 3: refusals -------------------------------------------------------------------------


def passed(
    tmp_path: Path, config: RuntimeConfig | None = None
) -> tuple[PassThrough, Provider, Batch]:
    """A batch whose provider batch `pb1` of `file-up` runs."""
    passing, provider, batch = make(tmp_path, config or compiled(), [line(0), line(1)])
    upstream = replace(batch.upstream, step="poll", file_id="file-up", batch_id="pb1")  # type: ignore[arg-type]
    return passing, provider, passing.store.update(batch, upstream=upstream)


def completed(_: bytes) -> dict[str, Any]:
    return {
        "id": "pb1",
        "status": "completed",
        "completed_at": 7,
        "output_file_id": "file-out",
        "error_file_id": None,
        "request_counts": {"total": 2, "completed": 2, "failed": 0},
        "errors": "not an object",
    }


def answer(i: int, tokens: int = 10) -> bytes:
    body = {
        "id": f"c{i}",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens},
    }
    response = {"status_code": 200, "request_id": "r", "body": body}
    return orjson.dumps({"id": f"r{i}", "custom_id": f"l{i}", "response": response}) + b"\n"


def test_refusals_while_the_provider_runs_are_waited_out(tmp_path: Path) -> None:
    passing, provider, batch = passed(tmp_path)
    answers = [refused(401), refused(404), ok(id="pb1", status=7), completed]
    provider.answers[(b"GET", "/batches/pb1")] = lambda body: answers.pop(0)(body)
    provider.contents["/files/file-out/content"] = answer(0) + answer(1)
    asyncio.run(run(passing, batch))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "completed", done
    assert (done.completed, done.failed) == (2, 0) and done.has_output
    # The client's data is not left at the provider.
    assert {p for m, p in provider.calls if m == b"DELETE"} == {
        "/files/file-up",
        "/files/file-out",
    }


def test_a_refused_cancel_reads_the_batch_again(tmp_path: Path) -> None:
    passing, provider, batch = passed(tmp_path)
    passing.store.request_cancel(batch)
    reads = [ok(id="pb1", status="in_progress"), completed]
    provider.answers[(b"GET", "/batches/pb1")] = lambda body: reads.pop(0)(body)
    provider.answers[(b"POST", "/batches/pb1/cancel")] = refused(400)
    provider.contents["/files/file-out/content"] = answer(0) + answer(1)
    asyncio.run(run(passing, batch))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "completed"


def test_a_refused_upload_shows_the_gateways_words_not_the_providers(tmp_path: Path) -> None:
    passing, provider, batch = make(tmp_path, compiled(), [line(0)])
    provider.answers[(b"POST", "/files")] = refused(401)
    asyncio.run(run(passing, batch))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "failed"
    [error] = done.errors
    assert error["code"] == "upstream_auth_failed"
    assert "rejected the gateway's credentials" in error["message"]
    assert "sk-proj" not in orjson.dumps(done.as_openai()).decode()


def test_a_provider_batch_of_the_wrong_shape_reads_as_absent() -> None:
    seen = read_batch(
        {"status": 3, "request_counts": [], "errors": "x", "completed_at": "soon", "id": None}
    )
    assert (seen.status, seen.total, seen.completed, seen.errors, seen.id) == (
        None,
        None,
        0,
        [],
        None,
    )
    assert read_batch(["not", "a", "dict"]).status is None


# -- 4, 6: metering ---------------------------------------------------------------------------


def test_metering_uses_what_was_saved_in_chunks_counting_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = compiled()
    lines = [line(i) for i in range(450)]
    passing, provider, batch = make(tmp_path, config, lines)
    provider.answers[(b"POST", "/files")] = ok(id="file-up", created_at=5)
    provider.answers[(b"POST", "/batches")] = ok(id="pb1", status="validating")
    provider.answers[(b"GET", "/batches/pb1")] = completed
    errors = b"".join(
        orjson.dumps({"custom_id": f"l{i}", "response": {"status_code": 400, "body": {}}}) + b"\n"
        for i in range(400, 450)
    )
    provider.answers[(b"GET", "/batches/pb1")] = lambda _: {
        **completed(b""),
        "error_file_id": "file-err",
    }
    provider.contents["/files/file-out/content"] = b"".join(answer(i) for i in range(400))
    provider.contents["/files/file-err/content"] = errors
    recorded: list[tuple[str, str | None, str | None]] = []

    def record(
        config: Any, entry: Any, key: Any, batch: Any, line: Any, priced: Any, *_: Any
    ) -> None:
        found = priced["cheap"]
        recorded.append((line.custom_id, key.name if key else None, found.info and found.kind))

    monkeypatch.setattr(batch_metering, "_record", record)
    moved = {"cheap": {"deployments": [{"provider": "compat", "model": "x"}]}}

    def changed() -> None:
        # By metering, the key is deleted and the model routed elsewhere.
        passing.config = lambda: replace(compiled(moved), keys={})

    provider.on_save = changed
    turns = 0

    async def both() -> None:
        nonlocal turns
        task = asyncio.create_task(passing.run(batch))
        while not task.done():
            turns += 1
            await asyncio.sleep(0)
        await task

    asyncio.run(both())
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "completed"
    assert (done.completed, done.failed) == (400, 50)
    assert sorted(r[0] for r in recorded) == sorted(f"l{i}" for i in range(450))
    assert {r[1:] for r in recorded} == {("k", "openai")}
    assert done.upstream is not None and done.upstream.metered == 450
    assert turns > 3  # the loop ran between chunks


# -- 5: the whole batch against the budget ---------------------------------------------------


def choose(tmp_path: Path, config: RuntimeConfig, lines: list[bytes]) -> str | None:
    passing, _, batch = make(tmp_path, config, lines)
    entry = config.routes.exact[ENDPOINT]["POST"]
    request = Request("POST", "/v1/batches", b"", [], b"{}", "1.1", True, b"r", "1.2.3.4")
    ctx = RequestContext(request, config, entry)
    [ctx.key] = config.keys.values()
    return asyncio.run(passing.choose(ctx, "k", ENDPOINT, batch.input_file_id))


def test_a_batch_whose_estimate_does_not_fit_the_budget_is_refused(tmp_path: Path) -> None:
    # gpt-4o-mini at half price: a line of ~1,000 tokens in and 1,024 out is about $0.0004.
    config = compiled(budget="0.01")
    assert choose(tmp_path / "a", config, [line(i, content="x" * 4000) for i in range(5)]) == "oa"
    with pytest.raises(GatewayError) as refusal:
        choose(tmp_path / "b", config, [line(i, content="x" * 4000) for i in range(100)])
    assert refusal.value.status == 429 and refusal.value.code == "budget_exceeded"
    # What the check reserved was given back.
    assert choose(tmp_path / "c", config, [line(i, content="x" * 4000) for i in range(5)]) == "oa"


# -- 7, 8 -------------------------------------------------------------------------------------


def test_the_provider_list_is_paged_back_to_the_upload() -> None:
    page = {
        "data": [{"id": "b9", "input_file_id": "f", "created_at": 100}],
        "has_more": True,
        "last_id": "b9",
    }
    assert find_batch(page, "ours", 50) == (None, "b9")
    assert find_batch(page, "ours", 200) == (None, None)  # older than our file: not there
    assert find_batch({**page, "has_more": False}, "ours", 50) == (None, None)


def test_an_earlier_provider_batch_on_a_later_page_is_taken(tmp_path: Path) -> None:
    passing, provider, batch = make(tmp_path, compiled(), [line(0)])
    upstream = replace(batch.upstream, step="create", file_id="file-up", file_created_at=1)  # type: ignore[arg-type]
    batch = passing.store.update(batch, upstream=upstream)
    pages = {
        "": {
            "data": [{"id": "x1", "input_file_id": "other", "created_at": 9}],
            "has_more": True,
            "last_id": "x1",
        },
        "x1": {
            "data": [{"id": "pb1", "input_file_id": "file-up", "created_at": 2}],
            "has_more": False,
        },
    }
    provider.answers[(b"GET", "/batches")] = lambda _: pages[
        provider.calls[-1][1].partition("after=")[2]
    ]
    provider.answers[(b"GET", "/batches/pb1")] = completed
    provider.contents["/files/file-out/content"] = answer(0)
    asyncio.run(run(passing, batch))
    assert (b"POST", "/batches") not in provider.calls
    done = passing.store.get("k", batch.id)
    assert done is not None and done.upstream is not None and done.upstream.batch_id == "pb1"


def test_a_batch_whose_provider_is_gone_fails_after_its_window(tmp_path: Path) -> None:
    passing, _, batch = passed(tmp_path)
    passing.config = lambda: compiled({"cheap": {"deployments": [{"provider": "compat"}]}})
    batch = passing.store.update(batch, expires_at=int(time.time()) - 2 * 3600)
    asyncio.run(run(passing, batch))
    done = passing.store.get("k", batch.id)
    assert done is not None and done.status == "failed"
    assert [e["code"] for e in done.errors] == ["provider_unavailable"]
