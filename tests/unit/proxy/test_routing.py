from __future__ import annotations

import json
from typing import Any

from tollway.config.snapshot import SnapshotHolder
from tollway.policies.context import RequestContext
from tollway.proxy.http import Request
from tollway.proxy.routing import Router

from fakes import FakeClient, config


def request(method: str, path: str, *headers: tuple[bytes, bytes]) -> Request:
    return Request(method, path, b"", list(headers), b"{}", "1.1", True, b"rid")


def router_with(calls: list[tuple[str, RequestContext]], holder: SnapshotHolder) -> Router:
    def handler(name: str) -> Any:
        def handle(ctx: RequestContext, conn: Any) -> None:
            calls.append((name, ctx))

        return handle

    names = (
        "model_call",
        "list_models",
        "retrieve_model",
        "healthz",
        "readyz",
        "responses_websocket",
        "realtime",
        "create_response",
        "stored_response",
        "conversations",
        "files",
        "batches",
    )
    return Router(holder, {name: handler(name) for name in names})


AUTH = (b"authorization", b"Bearer sk-all")


def test_routes_come_from_the_snapshot_and_reach_their_handler() -> None:
    calls: list[tuple[str, RequestContext]] = []
    router = router_with(calls, SnapshotHolder(config()))
    for method, path, handler in [
        ("POST", "/v1/chat/completions", "model_call"),
        ("POST", "/v1/messages", "model_call"),
        ("GET", "/v1/models", "list_models"),
        ("GET", "/v1/models/gpt", "retrieve_model"),
        ("GET", "/healthz", "healthz"),
        ("HEAD", "/readyz", "readyz"),
    ]:
        router.dispatch(request(method, path, AUTH), FakeClient())  # type: ignore[arg-type]
        assert calls[-1][0] == handler, path
    ctx = calls[1][1]
    assert ctx.route is not None and ctx.route.api is not None
    assert ctx.route.api.name == "anthropic.messages"
    assert ctx.key is not None and ctx.key.name == "all"


def test_unknown_paths_and_methods() -> None:
    router = router_with([], SnapshotHolder(config()))
    client = FakeClient()
    router.dispatch(request("GET", "/v2/nothing"), client)  # type: ignore[arg-type]
    router.dispatch(request("DELETE", "/v1/chat/completions"), client)  # type: ignore[arg-type]
    router.dispatch(request("GET", "/v1/models/"), client)  # type: ignore[arg-type]
    (s404, _, b404), (s405, h405, _), (s404b, _, _) = client.sent
    assert s404 == 404 and json.loads(b404)["error"]["code"] == "unknown_url"
    assert s405 == 405 and (b"allow", b"POST") in h405
    assert s404b == 404


def test_the_request_phase_refuses_in_the_routes_own_api_format() -> None:
    calls: list[tuple[str, RequestContext]] = []
    router = router_with(calls, SnapshotHolder(config()))
    client = FakeClient()
    router.dispatch(request("POST", "/v1/messages"), client)  # type: ignore[arg-type]
    router.dispatch(request("POST", "/v1/chat/completions"), client)  # type: ignore[arg-type]
    router.dispatch(request("GET", "/healthz"), client)  # type: ignore[arg-type]
    (s1, _, anthropic), (s2, _, openai) = client.sent
    assert s1 == s2 == 401
    assert json.loads(anthropic)["type"] == "error"
    assert json.loads(openai)["error"]["code"] == "missing_api_key"
    # The probes run no policy.
    assert [name for name, _ in calls] == ["healthz"]


def test_a_swapped_snapshot_is_bound_on_the_next_request() -> None:
    calls: list[tuple[str, RequestContext]] = []
    holder = SnapshotHolder(config())
    router = router_with(calls, holder)
    router.dispatch(request("GET", "/healthz"), FakeClient())  # type: ignore[arg-type]
    fresh = config(policies=[])
    holder.current = fresh
    router.dispatch(request("POST", "/v1/chat/completions"), FakeClient())  # type: ignore[arg-type]
    assert calls[-1][1].config is fresh
    assert calls[-1][1].key is None  # no key_auth in the new chain
