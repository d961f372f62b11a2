"""What a call costs, as its record says: the catalog's prices times the tokens the provider
reported, exactly (Decimal), for every provider format, unstreamed, streamed, and streams cut
short by the upstream (metered for what they delivered, counted by the gateway where the
provider had not reported it); the record's tokens are those the client was told."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import select

from tollway.config.compile import hash_key
from tollway.llm import tokens
from tollway.store import open_store
from tollway.store.metering_schema import call_records

from gateways import CLIENT_KEY, recording_gateway
from servers import Process

FORMATS = ("openai_compatible", "anthropic", "gemini", "bedrock", "cohere")
PRICES = {
    "input": Decimal("2.5"),
    "output": Decimal("10"),
    "cached_input": Decimal("1.25"),
    "cache_write": Decimal("3.125"),
    "reasoning": Decimal("12"),
}
MILLION = Decimal(1_000_000)
COUNTER = tokens.counter_for("mock-model")
MESSAGES: Any = [{"role": "user", "content": "Say something about the sea."}]


def provider(kind: str, mock: Process) -> dict[str, Any]:
    if kind == "gemini":
        return {"type": kind, "base_url": mock.url + "/v1beta", "api_key_env": "MOCK_KEY"}
    if kind == "bedrock":
        return {
            "type": kind,
            "region": "us-east-1",
            "base_url": mock.url,
            "aws_access_key_id_env": "MOCK_KEY",
            "aws_secret_access_key_env": "MOCK_KEY",
        }
    if kind == "cohere":
        return {"type": kind, "base_url": mock.url + "/v2", "api_key_env": "MOCK_KEY"}
    return {"type": kind, "base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}


UPSTREAM = {"full": "mock-model", "cut": "mock-model~cut_after=3"}


def config(mock: Process) -> dict[str, Any]:
    entry = {
        "provider": "openai",
        "context_window": 128000,
        **{k: str(v) for k, v in PRICES.items()},
    }
    return {
        "providers": {kind: provider(kind, mock) for kind in FORMATS},
        "models": {
            f"{kind}-{variant}": {"deployments": [{"provider": kind, "model": upstream}]}
            for kind in FORMATS
            for variant, upstream in UPSTREAM.items()
        },
        "catalog": {upstream: entry for upstream in UPSTREAM.values()},
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }


def catalog_cost(row: Any) -> Decimal:
    """The catalog's arithmetic, written out: fresh, cached and cache-written input, and
    output with its reasoning part at the reasoning price."""
    fresh = row.input_tokens - row.cached_tokens - row.cache_write_tokens
    total = (
        fresh * PRICES["input"]
        + row.cached_tokens * PRICES["cached_input"]
        + row.cache_write_tokens * PRICES["cache_write"]
        + row.reasoning_tokens * PRICES["reasoning"]
        + (row.output_tokens - row.reasoning_tokens) * PRICES["output"]
    )
    return total / MILLION


@pytest.fixture(scope="module")
def recorded(workdir: Path, mock: Process) -> Iterator[tuple[Process, Path]]:
    yield from recording_gateway(workdir, config(mock), "costs")


def calls(gateway: Process) -> tuple[dict[str, dict[str, int] | None], dict[str, str]]:
    """Every format, three ways, through the OpenAI SDK, and Anthropic's natively; returns
    the usage each client was told (None for cut streams), by request id, and the text each
    cut stream delivered before its error."""
    told: dict[str, dict[str, int] | None] = {}
    received: dict[str, str] = {}
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    for kind in FORMATS:
        rid = f"{kind}-plain"
        reply = client.chat.completions.create(
            model=f"{kind}-full", messages=MESSAGES, extra_headers={"x-request-id": rid}
        )
        assert reply.usage is not None
        told[rid] = {"input": reply.usage.prompt_tokens, "output": reply.usage.completion_tokens}
        rid = f"{kind}-stream"
        usage = None
        for chunk in client.chat.completions.create(
            model=f"{kind}-full",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": rid},
        ):
            if chunk.usage is not None:
                usage = chunk.usage
        assert usage is not None
        told[rid] = {"input": usage.prompt_tokens, "output": usage.completion_tokens}
        rid = f"{kind}-cut"
        pieces: list[str] = []
        with pytest.raises(openai.APIError):
            for chunk in client.chat.completions.create(
                model=f"{kind}-cut",
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-request-id": rid},
            ):
                pieces.extend(c.delta.content or "" for c in chunk.choices)
        told[rid] = None
        received[rid] = "".join(pieces)
    native = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    message = native.messages.create(
        model="anthropic-full",
        max_tokens=200,
        messages=MESSAGES,
        extra_headers={"x-request-id": "native-plain"},
    )
    told["native-plain"] = {
        "input": message.usage.input_tokens,
        "output": message.usage.output_tokens,
    }
    with native.messages.stream(
        model="anthropic-full",
        max_tokens=200,
        messages=MESSAGES,
        extra_headers={"x-request-id": "native-stream"},
    ) as stream:
        final = stream.get_final_message()
    told["native-stream"] = {"input": final.usage.input_tokens, "output": final.usage.output_tokens}
    return told, received


def test_each_record_costs_the_catalog_arithmetic_of_its_tokens(
    recorded: tuple[Process, Path],
) -> None:
    gateway, data = recorded
    told, received = calls(gateway)
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(60) == 0
    store = open_store(data_dir=data, apply_migrations=False)
    try:
        with store.read() as session:
            rows = {r.request_id: r for r in session.execute(select(call_records))}
    finally:
        store.close()
    assert set(rows) == set(told)
    for rid, usage in told.items():
        row = rows[rid]
        if usage is not None:
            assert row.outcome == "completed", rid
            assert (row.input_tokens, row.output_tokens) == (usage["input"], usage["output"]), rid
            assert row.input_tokens > 0 and row.output_tokens > 0, rid
        else:
            # Cut short: metered for what it produced, counted where the provider did not
            # report it before the cut.
            assert row.outcome == "upstream_error", rid
            assert row.input_tokens > 0, rid
            assert row.output_tokens >= COUNTER.text(received[rid]), rid
        assert row.cost is not None, rid
        assert Decimal(row.cost) == catalog_cost(row), (rid, row.cost, catalog_cost(row))
    # A provider that reported nothing before the cut: both sides counted by the gateway.
    cut = rows["openai_compatible-cut"]
    assert cut.input_tokens == COUNTER.chat({"messages": MESSAGES})
    assert cut.output_tokens == COUNTER.text(received["openai_compatible-cut"])
    # A streamed call costs what the same call unstreamed costs.
    for kind in FORMATS:
        assert rows[f"{kind}-stream"].cost == rows[f"{kind}-plain"].cost, kind
