"""Calls whose provider reported no usage are metered by the gateway's own count: an
OpenAI-compatible server that reports none, and a stream the client left midway (the
upstream's usage chunk never comes). Input is counted from the request, output from what the
client was sent, with the model's tokenizer; cost is the catalog's arithmetic of those."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from sqlalchemy import select

from tollway.config.compile import hash_key
from tollway.llm import tokens
from tollway.store import open_store
from tollway.store.metering_schema import call_records

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import Process, free_port, start_gateway, wait_started

COUNTER = tokens.counter_for("gpt-4o")  # an OpenAI model: its own encoding, exact
MESSAGES: Any = [{"role": "user", "content": "Tell me about tides and the moon."}]
INPUT, OUTPUT = Decimal("2.5"), Decimal("10")


def config(mock: Process) -> dict[str, Any]:
    upstream = {"type": "openai_compatible", "base_url": mock.url + "/v1", "api_key_env": "MK"}
    return {
        "providers": {"mock": upstream},
        "models": {
            "silent": {"deployments": [{"provider": "mock", "model": "gpt-4o~no_usage"}]},
            "slow": {
                "deployments": [
                    {"provider": "mock", "model": "gpt-4o~words=400,chunks=80,chunk_delay_ms=40"}
                ]
            },
        },
        "catalog": {
            name: {"provider": "openai", "context_window": 128000, "input": "2.5", "output": "10"}
            for name in ("gpt-4o~no_usage", "gpt-4o~words=400,chunks=80,chunk_delay_ms=40")
        },
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }


@pytest.fixture(scope="module")
def recorded(workdir: Path, mock: Process) -> Iterator[tuple[Process, Path]]:
    data = workdir / f"counted-{free_port()}"
    gateway = start_gateway(
        workdir, config(mock), "--data-dir", str(data), env={"MK": UPSTREAM_KEY}
    )
    yield wait_started(gateway), data
    gateway.stop()


def leave_a_stream(gateway: Process, events: int) -> str:
    """Read `events` chunks of a streamed chat, then hang up; the text read."""
    body = orjson.dumps({"model": "slow", "messages": MESSAGES, "stream": True})
    host, port = gateway.url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {CLIENT_KEY}\r\ncontent-type: application/json\r\n"
        f"x-request-id: left\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    text: list[str] = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        buffer = b""
        while len(text) < events:
            data = sock.recv(65536)
            assert data, "the stream ended before the client left"
            buffer += data
            for line in buffer.split(b"\n")[:-1]:
                if line.startswith(b"data: {"):
                    chunk = orjson.loads(line[6:])
                    text.extend(c["delta"].get("content") or "" for c in chunk["choices"])
            buffer = buffer.rsplit(b"\n", 1)[-1]
    return "".join(text)


def records(gateway: Process, data: Path) -> dict[str, Any]:
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(60) == 0
    store = open_store(data_dir=data, apply_migrations=False)
    try:
        with store.read() as session:
            return {r.request_id: r for r in session.execute(select(call_records))}
    finally:
        store.close()


def test_calls_without_reported_usage_are_counted_and_priced(
    recorded: tuple[Process, Path],
) -> None:
    gateway, data = recorded
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    whole = client.chat.completions.create(
        model="silent", messages=MESSAGES, extra_headers={"x-request-id": "whole"}
    )
    assert whole.usage is None  # the provider reported none, and the client is told none
    pieces = []
    for chunk in client.chat.completions.create(
        model="silent",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "streamed"},
    ):
        assert chunk.usage is None
        pieces.extend(c.delta.content or "" for c in chunk.choices)
    full = client.chat.completions.create(model="slow", messages=MESSAGES)
    assert full.usage is not None
    read = leave_a_stream(gateway, 10)
    rows = records(gateway, data)

    expected_input = COUNTER.chat({"messages": MESSAGES})
    text = whole.choices[0].message.content or ""
    for rid, answer in (("whole", text), ("streamed", "".join(pieces))):
        row = rows[rid]
        assert row.outcome == "completed", rid
        assert (row.input_tokens, row.output_tokens) == (expected_input, COUNTER.text(answer))
        expected_cost = (row.input_tokens * INPUT + row.output_tokens * OUTPUT) / 1_000_000
        assert Decimal(row.cost) == expected_cost, rid
    # The streamed call costs what the same call unstreamed costs.
    assert rows["whole"].cost == rows["streamed"].cost

    left = rows["left"]
    assert left.outcome == "client_disconnect"
    assert left.input_tokens == expected_input
    # At least what the client read (more may have been on its way when it hung up), and
    # less than the whole answer.
    assert COUNTER.text(read) <= left.output_tokens < full.usage.completion_tokens
    assert Decimal(left.cost) == (left.input_tokens * INPUT + left.output_tokens * OUTPUT) / (
        1_000_000
    )
