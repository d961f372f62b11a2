from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from tollway.config.snapshot import ClientKey, RouteEntry
from tollway.llm.client_apis import ANTHROPIC_MESSAGES, OPENAI_CHAT, ClientApi
from tollway.policies.context import RequestContext
from tollway.policies.key_auth import KeyAuth, KeyAuthConfig
from tollway.policies.pipeline import EMPTY
from tollway.proxy.http import Request


def ctx_with(*headers: tuple[bytes, bytes], api: ClientApi = OPENAI_CHAT) -> RequestContext:
    request = Request("POST", "/", b"", list(headers), b"", "1.1", True, b"id")
    return RequestContext(request, None, RouteEntry("model_call", EMPTY, api))  # type: ignore[arg-type]


KEYS = {
    hashlib.sha256(b"sk-good").digest(): ClientKey.build("team-a", None),
    hashlib.sha256(b"sk-some").digest(): ClientKey.build("some", ("gpt-4o", "text-embedding-*")),
}
POLICY = KeyAuth(KEYS)


def test_bearer_and_api_key_headers_are_accepted() -> None:
    for header in (
        (b"authorization", b"Bearer sk-good"),
        (b"authorization", b"bearer sk-good"),
        (b"x-api-key", b"sk-good"),
        (b"api-key", b"sk-good"),
    ):
        ctx = ctx_with(header)
        assert POLICY.on_request(ctx) is None
        assert ctx.key == ClientKey("team-a")


def test_missing_and_wrong_keys_are_401() -> None:
    missing = POLICY.on_request(ctx_with())
    assert missing is not None and (missing.status, missing.code) == (401, "missing_api_key")
    wrong = POLICY.on_request(ctx_with((b"authorization", b"Bearer sk-bad")))
    assert wrong is not None and (wrong.status, wrong.code) == (401, "invalid_api_key")
    basic = POLICY.on_request(ctx_with((b"authorization", b"Basic abc")))
    assert basic is not None and basic.code == "missing_api_key"


def test_a_browser_websocket_carries_its_key_in_a_subprotocol() -> None:
    protocols = b"realtime, openai-insecure-api-key.sk-good, openai-beta.realtime-v1"
    ctx = ctx_with((b"sec-websocket-protocol", protocols))
    assert POLICY.on_request(ctx) is None
    assert ctx.key == ClientKey("team-a")
    # Other subprotocols are no key; an empty key subprotocol is none either.
    for offered in (b"realtime", b"openai-insecure-api-key."):
        refused = POLICY.on_request(ctx_with((b"sec-websocket-protocol", offered)))
        assert refused is not None and refused.code == "missing_api_key"
    # Beside one, a header's key still counts.
    both = ctx_with((b"sec-websocket-protocol", b"realtime"), (b"authorization", b"Bearer sk-good"))
    assert POLICY.on_request(both) is None
    headers_only = KeyAuth(KEYS, frozenset({b"authorization"}))
    assert headers_only.on_request(ctx_with((b"sec-websocket-protocol", protocols))) is not None


def test_configured_headers_limit_where_the_key_may_be() -> None:
    only_bearer = KeyAuth(KEYS, frozenset({b"authorization"}))
    assert only_bearer.on_request(ctx_with((b"x-api-key", b"sk-good"))) is not None
    assert only_bearer.on_request(ctx_with((b"authorization", b"Bearer sk-good"))) is None
    with pytest.raises(ValidationError, match="unknown key headers"):
        KeyAuthConfig(headers=["cookie"])


@pytest.mark.parametrize(
    ("model", "allowed"),
    [("gpt-4o", True), ("text-embedding-3-small", True), ("gpt-4o-mini", False), ("x", False)],
)
def test_a_keys_models_are_enforced_once_the_model_is_known(model: str, allowed: bool) -> None:
    ctx = ctx_with((b"authorization", b"Bearer sk-some"))
    assert POLICY.on_request(ctx) is None
    ctx.model = model
    verdict = POLICY.on_body(ctx)
    if allowed:
        assert verdict is None
    else:
        assert verdict is not None and (verdict.status, verdict.code) == (404, "model_not_found")


def test_a_forbidden_model_reads_as_missing_in_the_clients_api() -> None:
    ctx = ctx_with((b"x-api-key", b"sk-some"), api=ANTHROPIC_MESSAGES)
    assert POLICY.on_request(ctx) is None
    ctx.model = "claude-opus-4-1"
    verdict = POLICY.on_body(ctx)
    assert verdict is not None
    assert verdict.message == ANTHROPIC_MESSAGES.no_such_model("claude-opus-4-1").message
