from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tollway.config.snapshot import RuntimeConfig
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Balancers
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.calls import splice_model, with_usage_requested
from tollway.proxy.handlers.model_call import ModelCalls
from tollway.proxy.http import Request
from tollway.proxy.upstream import UpstreamConnection, Upstreams

from fakes import FakeClient, FakeTransport, config


def test_splice_renames_only_the_top_level_model() -> None:
    body = b'{"messages":[{"role":"user","content":"\\"model\\": \\"gpt\\""}], "model" : "gpt"}'
    out = splice_model(body, "gpt", "gpt-4o")
    assert json.loads(out) == {**json.loads(body), "model": "gpt-4o"}
    assert out.startswith(body[: body.index(b'"model" :')])  # the rest is untouched bytes


def test_splice_falls_back_when_the_pair_also_appears_deeper() -> None:
    body = b'{"model":"gpt","metadata":{"model":"gpt"},"messages":[]}'
    out = json.loads(splice_model(body, "gpt", "gpt-4o"))
    assert out["model"] == "gpt-4o" and out["metadata"] == {"model": "gpt"}


def test_splice_handles_escapes_in_model_names() -> None:
    body = orjson.dumps({"model": 'we"ird/ünï', "messages": []})
    assert json.loads(splice_model(body, 'we"ird/ünï', "plain"))["model"] == "plain"


def ctx_for(
    runtime: RuntimeConfig, path: str, body: dict[str, Any], *headers: Any
) -> RequestContext:
    [entry] = runtime.routes.exact[path].values()
    request = Request("POST", path, b"", list(headers), orjson.dumps(body), "1.1", True, b"rid-1")
    return RequestContext(request, runtime, entry)


async def pooled_handler(runtime: RuntimeConfig) -> tuple[ModelCalls, FakeTransport]:
    """A handler whose every pool holds one idle fake connection, to see what it writes."""
    upstreams = Upstreams(Deadlines())
    transport = FakeTransport()
    for model in runtime.models.values():
        pool = upstreams.pool(model.deployments[0].provider)
        if not pool.idle:
            conn = UpstreamConnection(pool)
            conn.connection_made(transport)  # type: ignore[arg-type]
            pool.idle.append(conn)
    return ModelCalls(upstreams, Balancers()), transport


async def test_a_native_call_writes_the_precomputed_head_and_the_spliced_model() -> None:
    runtime = config(policies=[])
    calls, transport = await pooled_handler(runtime)
    ctx = ctx_for(runtime, "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user"}]})
    assert calls.handle(ctx, FakeClient()) is None  # type: ignore[arg-type]
    head, _, body = b"".join(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:9\r\n")
    assert b"x-request-id: rid-1" in head and b"accept: application/json" in head
    assert json.loads(body)["model"] == "gpt-4o"
    assert ctx.deployment is not None and ctx.deployment.model == "gpt-4o"


async def test_an_anthropic_call_passes_the_clients_beta_header_on() -> None:
    runtime = config(policies=[])
    calls, transport = await pooled_handler(runtime)
    body = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    ctx = ctx_for(runtime, "/v1/messages", body, (b"anthropic-beta", b"context-1m"))
    calls.handle(ctx, FakeClient())  # type: ignore[arg-type]
    head = b"".join(transport.written).split(b"\r\n\r\n")[0]
    assert head.startswith(b"POST /v1/messages HTTP/1.1")
    assert b"anthropic-beta: context-1m" in head and b"anthropic-version: 2023-06-01" in head


async def test_a_translated_call_goes_through_the_adapter() -> None:
    runtime = config(policies=[])
    calls, transport = await pooled_handler(runtime)
    ctx = ctx_for(
        runtime,
        "/v1/chat/completions",
        {"model": "gemini", "messages": [{"role": "user", "content": "x"}]},
    )
    calls.handle(ctx, FakeClient())  # type: ignore[arg-type]
    head, _, body = b"".join(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1beta/models/gemini-2.5-flash:generateContent")
    assert json.loads(body)["contents"][0]["parts"] == [{"text": "x"}]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (
            "/v1/chat/completions",
            {"model": "nope", "messages": [{"role": "user"}]},
            404,
            "model_not_found",
        ),
        ("/v1/completions", {"model": "gemini", "prompt": "x"}, 400, "unsupported_endpoint"),
        ("/v1/embeddings", {"model": "claude", "input": "x"}, 400, "unsupported_endpoint"),
        ("/v1/chat/completions", {"model": "gpt"}, 400, "invalid_value"),
    ],
)
async def test_calls_refused_before_any_upstream(
    path: str, body: dict[str, Any], status: int, code: str
) -> None:
    runtime = config(policies=[])
    calls, transport = await pooled_handler(runtime)
    client = FakeClient()
    ctx = ctx_for(runtime, path, body)
    calls.handle(ctx, client)  # type: ignore[arg-type]
    [(got, _, answer)] = client.sent
    assert (got, json.loads(answer)["error"]["code"]) == (status, code)
    assert transport.written == []
    assert ctx.outcome == "refused" and ctx.finished_at > 0


async def test_a_keys_model_list_is_enforced_in_the_body_phase() -> None:
    runtime = config()
    calls, _ = await pooled_handler(runtime)
    client = FakeClient()
    ctx = ctx_for(runtime, "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user"}]})
    ctx.key = runtime.keys[next(d for d, k in runtime.keys.items() if k.name == "some")]
    calls.handle(ctx, client)  # type: ignore[arg-type]
    [(status, _, answer)] = client.sent
    assert status == 404 and "does not exist" in json.loads(answer)["error"]["message"]


def test_usage_is_requested_for_metering_without_touching_the_rest() -> None:
    plain = b'{"model":"m","stream":true,"messages":[]}'
    asked = with_usage_requested(plain)
    assert json.loads(asked) == {**json.loads(plain), "stream_options": {"include_usage": True}}
    assert asked.endswith(plain[1:])
    options = b'{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1}}'
    assert json.loads(with_usage_requested(options))["stream_options"] == {
        "include_usage": True,
        "x": 1,
    }
