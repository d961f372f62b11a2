"""`key_auth`: the caller must present a configured client key.

Accepted as `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key` / `api-key`
(Anthropic and Azure-style clients). Keys are compared by SHA-256 digest: the gateway never
holds client keys in clear, and a dictionary lookup by digest leaks nothing about the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from tollway.config.snapshot import ClientKey
from tollway.errors import GatewayError
from tollway.proxy.context import RequestContext

_MISSING = GatewayError(
    401,
    "You didn't provide an API key. Pass it in the Authorization header as "
    "'Authorization: Bearer YOUR_KEY'.",
    code="missing_api_key",
)
_INVALID = GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")


def presented_key(ctx: RequestContext) -> bytes | None:
    for name, value in ctx.request.headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
        if name in (b"x-api-key", b"api-key") and value:
            return value
    return None


class KeyAuth:
    name = "key_auth"

    __slots__ = ("keys",)

    def __init__(self, keys: Mapping[bytes, ClientKey]) -> None:
        self.keys = keys

    def on_request(self, ctx: RequestContext) -> GatewayError | None:
        token = presented_key(ctx)
        if token is None:
            return _MISSING
        key = self.keys.get(hashlib.sha256(token).digest())
        if key is None:
            return _INVALID
        ctx.key = key
        return None
