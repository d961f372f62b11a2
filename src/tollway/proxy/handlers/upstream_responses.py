"""Responses kept by the provider that made them.

A model whose provider has a Responses API of its own is called through: the provider keeps
the response (`store`, the API's default) under its own id. The gateway keeps whose each
such id is, and at which provider, written before the answer that names it goes out, so that:

- `GET /v1/responses/{id}` (and `/input_items`) and `DELETE` reach the provider that keeps
  it, with that provider's credentials, for its owner only (another app's id is unknown);
- a call that continues it (`previous_response_id`) is made at that provider, and one that
  names an id its app does not own is refused before any provider sees it: a provider would
  otherwise continue another app's conversation for anyone who knew its id.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import orjson

from tollway.config.snapshot import Deployment, RuntimeConfig
from tollway.config.transport import head_prefix
from tollway.conversations.stored import ResponseStore
from tollway.errors import GatewayError
from tollway.policies.context import RequestContext
from tollway.proxy.exchange import open_stream
from tollway.proxy.upstream import UpstreamError, Upstreams

log = logging.getLogger("tollway.proxy")

_JSON = b"application/json"


def keep_owner(ctx: RequestContext, store: ResponseStore, owner: str) -> None:
    """Note whose the call's response is, at its provider, before the answer that names its id
    goes out (a stream's first event, or the whole answer)."""

    async def before_answer() -> None:
        answer_id = ctx.answer_id or _id_of(ctx.response_body)
        deployment = ctx.deployment
        if answer_id is None or deployment is None:
            return  # a failed call: no response was made
        try:
            await store.keep_upstream(owner, answer_id, deployment.provider.name, time.time())
        except Exception:
            # The answer still goes out: its id is then unknown to the gateway (404), which
            # is safe; holding the answer back for a store that fails would not be.
            log.exception("whose response %s is could not be written", answer_id)

    ctx.before_answer = before_answer


def _id_of(body: bytes | bytearray | None) -> str | None:
    if not body:
        return None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = answer.get("id") if isinstance(answer, dict) else None
    return found if isinstance(found, str) and found else None


def deployment_of(config: RuntimeConfig, provider: str) -> Deployment | None:
    """A deployment of the provider named `provider` (for its connection and credentials)."""
    routes = [*config.models.values(), *([config.wildcard] if config.wildcard else [])]
    for route in routes:
        for deployment in route.deployments:
            if deployment.provider.name == provider:
                return deployment
    return None


async def at_provider(
    ctx: RequestContext,
    upstreams: Upstreams,
    provider_name: str,
    method: str,
    response_id: str,
    tail: str,
) -> tuple[int, bytes]:
    """`method /responses/{id}[/tail]` at the provider that keeps the response: its status and
    body (the provider speaks the client's API: its errors are in the API's shape)."""
    deployment = deployment_of(ctx.config, provider_name)
    if deployment is None:
        raise GatewayError(
            404,
            f"Response with id '{response_id}' is kept by provider '{provider_name}', "
            "which this gateway no longer serves.",
        )
    provider = deployment.provider
    endpoint = f"/responses/{quote(response_id, safe='')}" + (f"/{tail}" if tail else "")
    path = provider.path(endpoint, deployment.model or "")
    query = ctx.request.query
    if query:
        path += (b"&" if b"?" in path else b"?") + query
    headers = (*provider.headers, (b"accept", _JSON))
    head = head_prefix(method.encode(), path, provider.host, headers)
    head += b"x-request-id: %s\r\ncontent-length: 0\r\n\r\n" % ctx.request.request_id
    ctx.deployment = deployment
    ctx.upstream_started_at = time.monotonic()
    try:
        upstream = await open_stream(upstreams.pool(provider), head, b"")
        body = await upstream.read_all()
    except UpstreamError as exc:
        raise GatewayError(
            502, f"Provider '{provider_name}' could not be reached: {exc.message}."
        ) from exc
    return upstream.status, body
