"""The pure pieces of passing batches through to a provider's Batch API: which batches go
(one provider with a Batch API that allows it, one upstream name per model, models the key may
use), what goes up (models renamed), what comes back (each line's id, status and answer), how
an earlier attempt is found, the batch price, the config field, and a provider batch's cost
counted against the key's budget."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.batches.jobs import Line
from tollway.batches.passthrough import (
    destination,
    find_batch,
    find_file,
    line_model,
    results,
    upstream_lines,
    write_upload,
)
from tollway.config.compile import compile_config, hash_key
from tollway.config.load import ConfigError, validate_config
from tollway.config.snapshot import RuntimeConfig
from tollway.limits.limiter import Limiter
from tollway.llm import multipart
from tollway.llm.catalog import ModelInfo, batch_cost
from tollway.policies.context import RequestContext
from tollway.proxy.http import Request


def compiled(extra: dict[str, Any] | None = None) -> RuntimeConfig:
    data: dict[str, Any] = {
        "providers": {
            "oa": {"type": "openai", "api_key_env": "K"},
            "ob": {"type": "openai", "api_key_env": "K"},
            "off": {"type": "openai", "api_key_env": "K", "batch_passthrough": False},
            "compat": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
        },
        "models": {
            "cheap": {"deployments": [{"provider": "oa", "model": "gpt-4o-mini"}]},
            "big": {"deployments": [{"provider": "oa"}, {"provider": "oa"}]},
            "elsewhere": {"deployments": [{"provider": "ob", "model": "gpt-4o-mini"}]},
            "split": {"deployments": [{"provider": "oa"}, {"provider": "ob"}]},
            "two-names": {
                "deployments": [
                    {"provider": "oa", "model": "gpt-4o"},
                    {"provider": "oa", "model": "gpt-4o-mini"},
                ]
            },
            "closed": {"deployments": [{"provider": "off", "model": "gpt-4o-mini"}]},
            "local": {"deployments": [{"provider": "compat"}]},
        },
        **(extra or {}),
    }
    return compile_config(validate_config(data), {"K": "sk-provider"})


def test_one_provider_with_a_batch_api_takes_the_batch_under_its_names() -> None:
    config = compiled()
    where = destination(config, None, {"cheap", "big"})
    assert where is not None and where.provider.name == "oa"
    assert where.upstream_model("cheap") == "gpt-4o-mini"
    assert where.upstream_model("big") == "big"  # no name of its own: the client's
    assert where.deployments["cheap"].info is not None  # priced from the catalog


@pytest.mark.parametrize(
    "models",
    [
        {"cheap", "elsewhere"},  # two providers
        {"split"},  # one model over two providers
        {"two-names"},  # one model, two upstream names
        {"closed"},  # the provider turned pass-through off
        {"local"},  # a provider type without a Batch API
        {"cheap", "no-such-model"},
        {"prompt:greeting"},
        set(),
    ],
)
def test_anything_else_runs_in_the_gateway(models: set[str]) -> None:
    assert destination(compiled(), None, models) is None


def test_a_model_the_key_may_not_use_keeps_the_batch_in_the_gateway() -> None:
    config = compiled({"keys": [{"name": "k", "key_sha256": hash_key("sk-k"), "models": ["big"]}]})
    [key] = config.keys.values()
    assert destination(config, key, {"big"}) is not None
    assert destination(config, key, {"big", "cheap"}) is None


def test_only_a_type_with_a_batch_api_may_turn_pass_through_on() -> None:
    with pytest.raises(ConfigError) as refused:
        validate_config(
            {
                "providers": {
                    "p": {
                        "type": "openai_compatible",
                        "base_url": "http://127.0.0.1:9/v1",
                        "batch_passthrough": True,
                    }
                }
            }
        )
    assert "batch_passthrough" in str(refused.value)
    with pytest.raises(ConfigError):
        validate_config({"providers": {"p": {"type": "openai", "batch_passthrough": "yes"}}})
    config = compiled()
    passes = {
        d.provider.name: d.provider.batch_passthrough
        for route in config.models.values()
        for d in route.deployments
    }
    assert passes == {"oa": True, "ob": True, "off": False, "compat": False}


def line(number: int, model: str) -> Line:
    body = {"model": model, "messages": [{"role": "user", "content": f"Say {number}."}]}
    return Line(number, f"req-{number}", orjson.dumps(body))


def test_the_input_goes_up_with_each_model_renamed() -> None:
    config = compiled()
    lines = [line(1, "cheap"), line(2, "big")]
    assert [line_model(x) for x in lines] == ["cheap", "big"]
    where = destination(config, None, {"cheap", "big"})
    assert where is not None
    sent = [orjson.loads(x) for x in upstream_lines(lines, "/v1/chat/completions", where)]
    assert [(s["custom_id"], s["method"], s["url"]) for s in sent] == [
        ("req-1", "POST", "/v1/chat/completions"),
        ("req-2", "POST", "/v1/chat/completions"),
    ]
    assert [s["body"]["model"] for s in sent] == ["gpt-4o-mini", "big"]
    assert sent[0]["body"]["messages"] == [{"role": "user", "content": "Say 1."}]


def test_the_upload_is_a_form_with_the_purpose_and_the_file(tmp_path: Path) -> None:
    where = destination(compiled(), None, {"cheap"})
    assert where is not None
    form = tmp_path / "form"
    content_type, size = write_upload(
        [line(1, "cheap")], "/v1/chat/completions", where, 'batch_1".jsonl', form
    )
    body = form.read_bytes()
    boundary = multipart.boundary_of(content_type)
    assert boundary is not None
    found = multipart.parts(body, boundary)
    assert multipart.field(body, found, "purpose") == "batch"
    [upload] = [p for p in found if p.name == "file"]
    assert upload.filename == "batch_1_.jsonl"
    sent = body[upload.start : upload.end]
    assert size == len(sent) and orjson.loads(sent)["body"]["model"] == "gpt-4o-mini"


def test_the_provider_files_lines_are_read_back() -> None:
    answered = orjson.dumps(
        {
            "id": "batch_req_1",
            "custom_id": "a",
            "response": {"status_code": 200, "request_id": "r", "body": {"usage": {}}},
            "error": None,
        }
    )
    expired = orjson.dumps(
        {"id": "batch_req_2", "custom_id": "b", "response": None, "error": {"code": "x"}}
    )
    data = b"\n".join([answered, b"", b"not json", b'{"no": "id"}', expired]) + b"\n"
    assert list(results(data.splitlines())) == [("a", 200, {"usage": {}}), ("b", 0, None)]


def test_an_earlier_attempt_is_found_at_the_provider() -> None:
    files = {
        "data": [
            {"id": "file-1", "filename": "batch_x.jsonl", "bytes": 10, "status": "error"},
            {"id": "file-2", "filename": "batch_x.jsonl", "bytes": 9, "status": "processed"},
            {"id": "file-3", "filename": "batch_x.jsonl", "bytes": 10, "status": "processed"},
        ]
    }
    assert find_file(files, "batch_x.jsonl", 10) == "file-3"
    assert find_file(files, "batch_y.jsonl", 10) is None
    assert find_file({"error": {}}, "batch_x.jsonl", 10) is None
    batches = {
        "data": [{"id": "b1", "input_file_id": "file-2"}, {"id": "b2", "input_file_id": "file-3"}]
    }
    assert find_batch(batches, "file-3", None) == ({"id": "b2", "input_file_id": "file-3"}, None)
    assert find_batch(batches, "file-4", None) == (None, None)


def test_the_batch_price_is_half_at_openai_and_full_elsewhere() -> None:
    info = ModelInfo("openai", "m", "chat", 1000, None, Decimal("0.15"), Decimal("0.60"))
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    assert info.cost(usage) == Decimal("0.00021")
    assert batch_cost(info, usage, "openai") == Decimal("0.000105")
    assert batch_cost(info, usage, "openai_compatible") == info.cost(usage)


def test_a_provider_batchs_cost_counts_against_the_budget() -> None:
    config = compiled(
        {
            "keys": [{"name": "k", "key_sha256": hash_key("sk-k")}],
            "budgets": {"rules": [{"scope": "key", "amount_usd": "0.5"}]},
        }
    )
    [key] = config.keys.values()
    entry = config.routes.exact["/v1/chat/completions"]["POST"]
    [limiter] = {
        found
        for p in entry.pipeline.done_phase
        if isinstance(found := getattr(p, "limiter", None), Limiter)
    }

    def call() -> RequestContext:
        body = line(1, "cheap")
        request = Request(
            "POST", "/v1/chat/completions", b"", [], body.body, "1.1", True, b"r", "127.0.0.1"
        )
        ctx = RequestContext(request, config, entry)
        ctx.key, ctx.model = key, "cheap"
        return ctx

    assert entry.pipeline.body(call()) is None  # budget left: admitted
    done = call()
    done.cost = Decimal("0.6")
    ticket = limiter.afterwards(done)
    assert ticket is not None and ticket.outcome is not None and ticket.outcome.admitted
    done.reserved = {"limits": ticket}
    entry.pipeline.done(done)
    probe = call()
    refused = entry.pipeline.body(probe)
    assert refused is not None and probe.refused_by == "budget"
