"""Two gateway nodes that name one files folder ($TOLLWAY_FILES_DIR) share the Files API and
the batches, as the nodes of a cluster do on a folder they all mount: a file uploaded through
one is read and deleted through the other, and a batch created through one is run once, its
lines answered exactly once, although the first node stops half-way through it."""

from __future__ import annotations

import io
import signal
from collections import Counter
from pathlib import Path

import openai
import orjson
import pytest
from test_batches import chat_line, config, jsonl, sdk, wait_for

from gateways import UPSTREAM_KEY
from servers import Process, free_port, start_gateway, wait_started


def node(workdir: Path, mock: Process, shared: Path, name: str) -> Process:
    data = workdir / f"{name}-{free_port()}"
    env = {"MOCK_KEY": UPSTREAM_KEY, "TOLLWAY_FILES_DIR": str(shared)}
    return wait_started(start_gateway(workdir, config(mock), "--data-dir", str(data), env=env))


def test_two_nodes_share_files_and_batches(workdir: Path, mock: Process) -> None:
    shared = workdir / f"shared-files-{free_port()}"
    first, second = node(workdir, mock, shared, "node-a"), node(workdir, mock, shared, "node-b")
    try:
        a, b = sdk(first), sdk(second)
        note = a.files.create(file=("note.jsonl", io.BytesIO(b'{"x": 1}\n')), purpose="batch")
        assert b.files.retrieve(note.id).bytes == note.bytes
        assert b.files.content(note.id).content == b'{"x": 1}\n'
        assert b.files.delete(note.id).deleted
        with pytest.raises(openai.NotFoundError):
            a.files.retrieve(note.id)

        lines = [chat_line(i) for i in range(300)]
        upload = a.files.create(file=("input.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = b.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert a.batches.retrieve(batch.id).id == batch.id
        wait_for(a, batch.id, lambda x: x.request_counts and x.request_counts.completed >= 100)
        # Whichever node runs it, the first one stops now: the second finishes what is left.
        first.signal(signal.SIGTERM)
        assert first.wait(60) == 0
        done = wait_for(b, batch.id, lambda x: x.status in ("completed", "failed"))
        assert done.status == "completed", done
        assert done.request_counts.completed == 300 and done.request_counts.failed == 0
        assert done.output_file_id is not None
        output = b.files.content(done.output_file_id).content
        counts = Counter(orjson.loads(line)["custom_id"] for line in output.splitlines())
        assert len(counts) == 300 and max(counts.values()) == 1  # every line once
    finally:
        first.stop()
        second.stop()
