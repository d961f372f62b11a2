"""`key_auth`: the caller must present a known client key, and may use only its models.

A key of an app (kept by the store) must also be live: not revoked, not expired, and used from
one of its networks when it names some.

Accepted as `Authorization: Bearer <key>` (OpenAI clients), `x-api-key` / `api-key`
(Anthropic and Azure-style clients), or, for browsers, which cannot set headers on a
WebSocket, as an `openai-insecure-api-key.<key>` subprotocol (OpenAI's realtime convention),
unless configured otherwise. Keys are compared by SHA-256
digest: the gateway never holds client keys in clear, and a dictionary lookup by digest leaks
nothing about the key. A model the key may not use answers exactly as a model that does not
exist, so nothing about it leaks either.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from tollway.errors import GatewayError
from tollway.llm.websocket import KEY_PROTOCOL
from tollway.policies.base import Policy, Verdict
from tollway.policies.config import PolicyConfig

if TYPE_CHECKING:
    from tollway.config.snapshot import ClientKey
    from tollway.policies.context import IncomingRequest, RequestContext

_MISSING = GatewayError(
    401,
    "You didn't provide an API key. Pass it in the Authorization header as "
    "'Authorization: Bearer YOUR_KEY'.",
    code="missing_api_key",
)
_INVALID = GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
_REVOKED = GatewayError(401, "This API key has been revoked.", code="revoked_api_key")
_EXPIRED = GatewayError(401, "This API key has expired.", code="expired_api_key")
_WRONG_PLACE = GatewayError(
    403, "This API key may not be used from your network address.", code="address_not_allowed"
)
_HEADERS = ("authorization", "x-api-key", "api-key", "sec-websocket-protocol")


class KeyAuthConfig(PolicyConfig):
    headers: list[str] = Field(
        default=list(_HEADERS),
        min_length=1,
        description="request headers that may carry the key: 'authorization' (as a Bearer "
        "token), 'x-api-key', 'api-key', 'sec-websocket-protocol' (a browser WebSocket's "
        "'openai-insecure-api-key.<key>' subprotocol)",
    )

    @field_validator("headers")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(_HEADERS))
        if unknown:
            raise ValueError(f"unknown key headers {unknown}; choose from {list(_HEADERS)}")
        return value


def presented_key(
    request: IncomingRequest, headers: frozenset[bytes] = frozenset()
) -> bytes | None:
    """The key a request carries, from the first of the accepted headers it has."""
    accepted = headers or _ALL
    for name, value in request.headers:
        if name not in accepted:
            continue
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
        if name == b"sec-websocket-protocol":
            # Only a key subprotocol counts: a WebSocket names its other subprotocols here too.
            for offered in value.split(b","):
                offered = offered.strip()
                if offered.startswith(KEY_PROTOCOL) and len(offered) > len(KEY_PROTOCOL):
                    return offered[len(KEY_PROTOCOL) :]
            continue
        if value:
            return value
    return None


_ALL = frozenset(h.encode() for h in _HEADERS)


class KeyAuth(Policy):
    name = "key_auth"

    __slots__ = ("headers", "keys")

    def __init__(self, keys: Mapping[bytes, ClientKey], headers: frozenset[bytes] = _ALL) -> None:
        self.keys = keys
        self.headers = headers

    def on_request(self, ctx: RequestContext) -> Verdict:
        key = ctx.key  # set only for calls the gateway makes itself (a batch's lines)
        if key is None:
            token = presented_key(ctx.request, self.headers)
            if token is None:
                return _MISSING
            key = self.keys.get(hashlib.sha256(token).digest())
            if key is None:
                return _INVALID
        if key.app is not None:
            # Keys of apps (from the store) have a lifetime and may be bound to networks.
            if key.revoked:
                return _REVOKED
            if key.expires_at is not None and time.time() >= key.expires_at:
                return _EXPIRED
            if key.networks is not None and not key.may_connect_from(ctx.request.client_address):
                return _WRONG_PLACE
        ctx.key = key
        return None

    def on_body(self, ctx: RequestContext) -> Verdict:
        key = ctx.key
        model = ctx.model
        if key is None or model is None or key.may_use(model):
            return None
        route = ctx.route
        if route is not None and route.api is not None:
            return route.api.no_such_model(model)
        return GatewayError(404, f"The model `{model}` does not exist.", code="model_not_found")
