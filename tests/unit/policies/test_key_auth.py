from __future__ import annotations

import hashlib

from tollway.config.snapshot import ClientKey
from tollway.policies.key_auth import KeyAuth
from tollway.proxy.context import RequestContext
from tollway.proxy.http import Request


def ctx_with(*headers: tuple[bytes, bytes]) -> RequestContext:
    request = Request("POST", "/", b"", list(headers), b"", "1.1", True, b"id")
    return RequestContext(request, None, None)  # type: ignore[arg-type]


POLICY = KeyAuth({hashlib.sha256(b"sk-good").digest(): ClientKey("team-a")})


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
