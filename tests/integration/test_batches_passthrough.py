"""Batches passed through to a provider's own Batch API (the mock's, as an `openai`
provider), with the openai SDK as client: the provider gets the renamed models and the
gateway's credentials, the client its output under the gateway's ids, each line a call record
at the batch price; a batch spread over two providers, or for a provider that turned
pass-through off, runs in the gateway; cancel is passed on; a provider batch that fails or
expires is shown so; a gateway stopped while the provider's batch runs makes one provider
batch and answers every line once; a key with its budget spent is refused at creation."""

from __future__ import annotations

import io
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from test_batches import chat_line, jsonl, sdk, wait_for

from call_records import stored_records
from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import Process, free_port, start_gateway, wait_started

THRIFTY_KEY = "sk-test-thrifty-batches"


def config(mock: Process) -> dict[str, Any]:
    base = mock.url + "/v1"
    return {
        "server": {"workers": 2},
        "providers": {
            "openai": {"type": "openai", "base_url": base, "api_key_env": "MOCK_KEY"},
            "plain": {"type": "openai_compatible", "base_url": base, "api_key_env": "MOCK_KEY"},
            "closed": {
                "type": "openai",
                "base_url": base,
                "api_key_env": "MOCK_KEY",
                "batch_passthrough": False,
            },
        },
        "models": {
            # Renamed at the provider: the client's name never reaches it.
            "cheap": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            "slow": {
                "deployments": [{"provider": "openai", "model": "gpt-4o-mini~latency_ms=100"}]
            },
            "broken": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini~status=400"}]},
            "local": {"deployments": [{"provider": "plain", "model": "gpt-4o-mini"}]},
            "kept-here": {"deployments": [{"provider": "closed", "model": "gpt-4o-mini"}]},
        },
        "budgets": {"rules": [{"scope": "key", "match": ["thrifty"], "amount_usd": "0.0000001"}]},
        "keys": [
            {"name": "tests", "key_sha256": hash_key(CLIENT_KEY)},
            {"name": "thrifty", "key_sha256": hash_key(THRIFTY_KEY)},
        ],
    }


def start(workdir: Path, mock: Process, data: Path) -> Process:
    gateway = start_gateway(
        workdir,
        config(mock),
        "--data-dir",
        str(data),
        env={"MOCK_KEY": UPSTREAM_KEY, "TOLLWAY_BATCH_POLL_MS": "100"},
    )
    return wait_started(gateway)


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Any:
    process = start(workdir, mock, workdir / f"passthrough-{free_port()}")
    yield process
    process.stop()


def at_mock(mock: Process, path: str) -> Any:
    answer = httpx.get(mock.url + "/v1" + path, headers={"Authorization": f"Bearer {UPSTREAM_KEY}"})
    answer.raise_for_status()
    return answer.content if path.endswith("/content") else answer.json()


def uploads_of(mock: Process, batch_id: str) -> list[dict[str, Any]]:
    """The files the gateway uploaded to the mock for one of its batches."""
    listed = at_mock(mock, "/files?purpose=batch&limit=10000")["data"]
    return [f for f in listed if f["filename"] == f"{batch_id}.jsonl"]


def deleted_uploads_of(mock: Process, batch_id: str) -> list[dict[str, Any]]:
    """The files the gateway uploaded for one of its batches and deleted since."""
    deleted = httpx.get(mock.url + "/_mock/deleted_files").json()
    return [f for f in deleted if f["filename"] == f"{batch_id}.jsonl"]


def all_uploads_of(mock: Process, batch_id: str) -> list[dict[str, Any]]:
    return uploads_of(mock, batch_id) + deleted_uploads_of(mock, batch_id)


def provider_batches(mock: Process, file_ids: set[str]) -> list[dict[str, Any]]:
    return [
        b for b in at_mock(mock, "/batches?limit=100")["data"] if b["input_file_id"] in file_ids
    ]


def create(client: openai.OpenAI, lines: list[dict[str, Any]], **metadata: str) -> Any:
    upload = client.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    return client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=metadata or None,
    )


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [orjson.loads(x) for x in client.files.content(file_id).content.splitlines()]


def test_a_batch_passed_through_end_to_end(workdir: Path, mock: Process) -> None:
    data = workdir / f"passthrough-{free_port()}"
    gateway = start(workdir, mock, data)
    try:
        client = sdk(gateway)
        lines = [chat_line(i, "cheap") for i in range(5)] + [chat_line(5, "broken")]
        batch = create(client, lines, job="nightly")
        done = wait_for(client, batch.id, lambda b: b.status in ("completed", "failed"), 60)
        assert done.status == "completed", done
        assert done.metadata == {"job": "nightly"}
        assert done.request_counts.total == 6
        assert (done.request_counts.completed, done.request_counts.failed) == (5, 1)
        output = lines_of(client, done.output_file_id)
        assert sorted(a["custom_id"] for a in output) == [f"line-{i}" for i in range(5)]
        assert all(a["response"]["status_code"] == 200 for a in output)
        # As the provider wrote it: the model is the provider's name for it.
        assert {a["response"]["body"]["model"] for a in output} == {"gpt-4o-mini"}
        errors = lines_of(client, done.error_file_id)
        assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("line-5", 400)]
        # The gateway's ids, its files readable by the client like any other.
        assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
        # The provider got the renamed models, once, and the gateway's credentials; the
        # input, output and error files are no longer kept there.
        assert uploads_of(mock, batch.id) == []
        [upload] = deleted_uploads_of(mock, batch.id)
        sent = [orjson.loads(x) for x in upload["content"].splitlines()]
        assert [s["custom_id"] for s in sent] == [line["custom_id"] for line in lines]
        assert {s["body"]["model"] for s in sent} == {"gpt-4o-mini", "gpt-4o-mini~status=400"}
        [theirs] = provider_batches(mock, {upload["id"]})
        assert theirs["metadata"] == {"job": "nightly"} and theirs["id"] != batch.id
        deleted = {f["id"] for f in httpx.get(mock.url + "/_mock/deleted_files").json()}
        assert {theirs["output_file_id"], theirs["error_file_id"]} <= deleted
        seen = [
            r
            for r in httpx.get(mock.url + "/_mock/requests").json()
            if r["path"].startswith(("/v1/files", "/v1/batches"))
        ]
        assert seen and {r["headers"].get("authorization") for r in seen} == {
            f"Bearer {UPSTREAM_KEY}"
        }
    finally:
        gateway.stop()
    records = stored_records(data)
    mine = {rid: r for rid, r in records.items() if rid.startswith(batch.id + "-")}
    assert set(mine) == {f"{batch.id}-line-{i}" for i in range(6)}
    usage = {a["custom_id"]: a["response"]["body"]["usage"] for a in output}
    for i in range(5):
        record = mine[f"{batch.id}-line-{i}"]
        used = usage[f"line-{i}"]
        assert (record.key_name, record.model, record.provider) == ("tests", "cheap", "openai")
        assert record.status == 200 and record.outcome == "completed"
        full = (
            Decimal(used["prompt_tokens"]) * Decimal("0.15")
            + Decimal(used["completion_tokens"]) * Decimal("0.60")
        ) / 1_000_000
        assert full > 0 and Decimal(str(record.cost)) == full / 2  # the batch price
    failed = mine[f"{batch.id}-line-5"]
    assert failed.status == 400 and failed.outcome == "upstream_error"


def test_a_batch_over_two_providers_runs_in_the_gateway(gateway: Process, mock: Process) -> None:
    client = sdk(gateway)
    batch = create(client, [chat_line(0, "cheap"), chat_line(1, "local")])
    done = wait_for(client, batch.id, lambda b: b.status == "completed", 60)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 0)
    assert {a["custom_id"] for a in lines_of(client, done.output_file_id)} == {"line-0", "line-1"}
    assert all_uploads_of(mock, batch.id) == []


def test_pass_through_turned_off_runs_in_the_gateway(gateway: Process, mock: Process) -> None:
    client = sdk(gateway)
    batch = create(client, [chat_line(i, "kept-here") for i in range(3)])
    done = wait_for(client, batch.id, lambda b: b.status == "completed", 60)
    assert done.request_counts.completed == 3
    assert all_uploads_of(mock, batch.id) == []


def test_cancel_is_passed_on(gateway: Process, mock: Process) -> None:
    client = sdk(gateway)
    batch = create(client, [chat_line(i, "slow") for i in range(40)])
    # Some lines answered first, so that the cancelled batch has output to keep.
    wait_for(client, batch.id, lambda b: bool(b.request_counts and b.request_counts.completed), 30)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = wait_for(client, batch.id, lambda b: b.status == "cancelled", 60)
    [upload] = all_uploads_of(mock, batch.id)
    [theirs] = provider_batches(mock, {upload["id"]})
    assert theirs["status"] == "cancelled"
    assert 0 < done.request_counts.completed < 40
    output = lines_of(client, done.output_file_id)
    assert len(output) == done.request_counts.completed
    assert {a["response"]["status_code"] for a in output} == {200}


def test_a_failed_provider_batch_is_shown_failed(gateway: Process) -> None:
    client = sdk(gateway)
    batch = create(client, [chat_line(0, "cheap")], mock_end="failed")
    done = wait_for(client, batch.id, lambda b: b.status in ("failed", "completed"), 60)
    assert done.status == "failed" and done.failed_at is not None
    assert done.errors is not None
    assert [e.code for e in done.errors.data] == ["invalid_request"]
    assert done.output_file_id is None and done.error_file_id is None


def test_an_expired_provider_batch_keeps_its_answers(gateway: Process) -> None:
    client = sdk(gateway)
    batch = create(client, [chat_line(i, "cheap") for i in range(6)], mock_end="expired")
    done = wait_for(client, batch.id, lambda b: b.status in ("expired", "completed"), 60)
    assert done.status == "expired" and done.expired_at is not None
    assert len(lines_of(client, done.output_file_id)) == 3
    expired = lines_of(client, done.error_file_id)
    assert sorted(e["custom_id"] for e in expired) == ["line-3", "line-4", "line-5"]
    assert {e["error"]["code"] for e in expired} == {"batch_expired"}
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 3)


def test_a_spent_budget_refuses_the_batch(gateway: Process, mock: Process) -> None:
    thrifty = sdk(gateway, THRIFTY_KEY)
    # One call spends the key's tiny budget.
    thrifty.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "Hi"}])
    upload = thrifty.files.create(
        file=("in.jsonl", io.BytesIO(jsonl([chat_line(0, "cheap")]))), purpose="batch"
    )
    with pytest.raises(openai.RateLimitError) as refused:
        thrifty.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert refused.value.code == "budget_exceeded"
    assert thrifty.batches.list().data == []


def test_a_restart_while_the_provider_runs_it_answers_each_line_once(
    workdir: Path, mock: Process
) -> None:
    data = workdir / f"passthrough-{free_port()}"
    gateway = start(workdir, mock, data)
    client = sdk(gateway)
    batch = create(client, [chat_line(i, "slow") for i in range(30)])
    wait_for(client, batch.id, lambda b: b.request_counts and b.request_counts.completed >= 5, 30)
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(60) == 0
    time.sleep(0.5)  # the provider's batch goes on meanwhile
    gateway = start(workdir, mock, data)
    try:
        client = sdk(gateway)
        done = wait_for(client, batch.id, lambda b: b.status in ("completed", "failed"), 60)
        assert done.status == "completed", done
        output = lines_of(client, done.output_file_id)
        counts = Counter(a["custom_id"] for a in output)
        assert len(counts) == 30 and max(counts.values()) == 1
        uploads = all_uploads_of(mock, batch.id)
        assert len(uploads) == 1
        assert len(provider_batches(mock, {uploads[0]["id"]})) == 1
    finally:
        gateway.stop()
    records = stored_records(data)
    assert len([rid for rid in records if rid.startswith(batch.id + "-")]) == 30
