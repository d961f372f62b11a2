"""OpenAI-compatible model endpoints: chat completions, completions, embeddings, models.

The request phase (policies, parsing, routing) runs synchronously; only a request that goes
upstream becomes a task. Bodies are parsed once, to read `model` and `stream`; the original
bytes are forwarded untouched unless the deployment renames the model.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.config.snapshot import Deployment, ProviderRuntime, RuntimeConfig
from tollway.errors import GatewayError
from tollway.proxy.connection import HttpConnection
from tollway.proxy.context import RequestContext
from tollway.proxy.handlers.forward import ForwardedCall, admit, may_use, upstream_failure
from tollway.proxy.handlers.translate import (
    OPENAI_CLIENT,
    translated_chat,
    translated_embeddings,
)
from tollway.proxy.http import Request
from tollway.proxy.streaming import ErrorEvent, error_event, relay_sse
from tollway.proxy.upstream import (
    UpstreamError,
    UpstreamPool,
    Upstreams,
    request_head,
)

log = logging.getLogger("tollway.proxy")

_JSON = b"application/json"
_SSE = b"text/event-stream"
_POST = b"POST"
_GET = b"GET"
_NO_BODY = b""


class SnapshotHolder:
    """The worker's current RuntimeConfig; replaced whole, never mutated."""

    __slots__ = ("current",)

    def __init__(self, current: RuntimeConfig) -> None:
        self.current = current


def _check_chat(body: dict[str, Any]) -> GatewayError | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return GatewayError(
            400,
            "'messages' must be a non-empty array of message objects.",
            param="messages",
            code="invalid_value",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return GatewayError(
                400,
                f"messages[{i}] must be an object with a 'role'.",
                param=f"messages[{i}]",
                code="invalid_value",
            )
    return None


def _check_completion(body: dict[str, Any]) -> GatewayError | None:
    if not isinstance(body.get("prompt"), str | list):
        return GatewayError(
            400, "'prompt' must be a string or an array.", param="prompt", code="invalid_value"
        )
    return None


def _check_embedding(body: dict[str, Any]) -> GatewayError | None:
    value = body.get("input")
    if not (isinstance(value, str) or (isinstance(value, list) and value)):
        return GatewayError(
            400,
            "'input' must be a string or a non-empty array.",
            param="input",
            code="invalid_value",
        )
    return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    can_stream: bool
    check: Callable[[dict[str, Any]], GatewayError | None]


def _check_response(body: dict[str, Any]) -> GatewayError | None:
    if "input" in body and not isinstance(body["input"], str | list):
        return GatewayError(
            400,
            "'input' must be a string or an array of items.",
            param="input",
            code="invalid_value",
        )
    return None


CHAT = Endpoint("/chat/completions", True, _check_chat)
COMPLETIONS = Endpoint("/completions", True, _check_completion)
EMBEDDINGS = Endpoint("/embeddings", False, _check_embedding)
# The Responses API, passed through to providers that serve it.
RESPONSES = Endpoint("/responses", True, _check_response)


def _send(
    conn: HttpConnection, error: GatewayError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    conn.send_json(error.status, error.body(), headers)


class OpenAIApi:
    def __init__(self, snapshot: SnapshotHolder, upstreams: Upstreams) -> None:
        self.snapshot = snapshot
        self.upstreams = upstreams

    # -- model calls ------------------------------------------------------------------------

    def chat_completions(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        return self._model_call(request, conn, CHAT)

    def completions(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        return self._model_call(request, conn, COMPLETIONS)

    def embeddings(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        return self._model_call(request, conn, EMBEDDINGS)

    def responses(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        return self._model_call(request, conn, RESPONSES)

    def _model_call(
        self, request: Request, conn: HttpConnection, endpoint: Endpoint
    ) -> Awaitable[None] | None:
        config = self.snapshot.current
        admitted = admit(config, request, conn, _send)
        if admitted is None:
            return None
        ctx, body = admitted
        model = body.get("model")
        if not isinstance(model, str) or not model:
            _send(
                conn,
                GatewayError(
                    400, "You must provide a model parameter.", param="model", code="missing_model"
                ),
            )
            return None
        invalid = endpoint.check(body)
        if invalid is not None:
            _send(conn, invalid)
            return None
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            _send(
                conn,
                GatewayError(
                    400, "'stream' must be a boolean.", param="stream", code="invalid_type"
                ),
            )
            return None
        route = config.route(model)
        if route is None or not may_use(ctx, model):
            # The same answer for a model the key may not use: nothing about it leaks.
            _send(conn, _no_such_model(model))
            return None
        deployment = route.balancer.pick()
        stream = stream and endpoint.can_stream
        provider = deployment.provider
        upstream_model = deployment.model or model
        if not provider.kind.openai_native:
            if endpoint is EMBEDDINGS:
                return translated_embeddings(
                    conn, self.upstreams, provider, body, upstream_model, request.request_id
                )
            if endpoint is not CHAT:
                _send(conn, _no_endpoint(model, provider, endpoint))
                return None
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return translated_chat(
                conn,
                self.upstreams,
                provider,
                body,
                upstream_model,
                stream,
                include_usage,
                request.request_id,
                OPENAI_CLIENT,
            )
        quirks = provider.kind.quirks
        if endpoint.path not in quirks.endpoints:
            _send(conn, _no_endpoint(model, provider, endpoint))
            return None
        changed = upstream_model != model
        if changed:
            body["model"] = upstream_model
        if quirks.active:
            try:
                changed = quirks.apply(provider.kind.name, body) or changed
            except GatewayError as error:
                _send(conn, error)
                return None
        payload = orjson.dumps(body) if changed else request.body
        extra = (
            (b"content-type", _JSON),
            (b"accept", _SSE if stream else _JSON),
            (b"x-request-id", request.request_id),
        )
        head = request_head(
            _POST,
            provider.path(endpoint.path, upstream_model),
            provider.host,
            provider.headers,
            extra,
            len(payload),
        )
        pool = self.upstreams.pool(provider)
        if stream:
            errors = _responses_error_event if endpoint is RESPONSES else error_event
            return self._stream(conn, provider, pool, head, payload, errors)
        call = ForwardedCall(pool, head, payload, conn, provider, _answer, _send)
        conn.attach(call)
        call.start()
        return None

    async def _stream(
        self,
        conn: HttpConnection,
        provider: ProviderRuntime,
        pool: UpstreamPool,
        head: bytes,
        payload: bytes,
        errors: ErrorEvent,
    ) -> None:
        try:
            upstream = await pool.open(head, payload)
            status, headers = upstream.status, upstream.headers
            if status < 300 and _content_type(headers).startswith(_SSE):
                await relay_sse(conn, upstream, errors)
                return
            data = await upstream.read_all()
        except UpstreamError as exc:
            _send(conn, upstream_failure(provider, exc))
            return
        _answer(conn, provider, status, headers, data)

    # -- models ------------------------------------------------------------------------------

    def list_models(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        config = self.snapshot.current
        ctx = RequestContext(request, conn, config)
        refusal = config.pipeline.run_request(ctx)
        if refusal is not None:
            _send(conn, refusal)
            return None
        listed = [_model_object(name, config) for name in config.models if may_use(ctx, name)]
        if config.wildcard is None:
            conn.send_json(200, orjson.dumps({"object": "list", "data": listed}))
            return None
        return self._list_with_wildcard(ctx, conn, config.wildcard.deployments, listed)

    async def _list_with_wildcard(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        deployments: tuple[Deployment, ...],
        listed: list[dict[str, Any]],
    ) -> None:
        """Configured names plus what each wildcard upstream lists, since any of its models
        can be called through the gateway."""
        seen = {item["id"] for item in listed}
        for deployment in deployments:
            provider = deployment.provider
            status, _, data = await self._get(provider, "/models")
            if status != 200:
                _send_upstream_error(conn, provider, status, [], data)
                return
            try:
                upstream_models = orjson.loads(data).get("data", [])
            except (orjson.JSONDecodeError, AttributeError):
                _send(
                    conn,
                    GatewayError(
                        502,
                        f"Upstream provider '{provider.name}' returned an invalid model list.",
                        code="upstream_protocol",
                    ),
                )
                return
            for item in upstream_models:
                if (
                    isinstance(item, dict)
                    and item.get("id") not in seen
                    and may_use(ctx, str(item.get("id")))
                ):
                    seen.add(item.get("id"))
                    listed.append(item)
        conn.send_json(200, orjson.dumps({"object": "list", "data": listed}))

    def retrieve_model(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        config = self.snapshot.current
        ctx = RequestContext(request, conn, config)
        refusal = config.pipeline.run_request(ctx)
        if refusal is not None:
            _send(conn, refusal)
            return None
        model = request.path[len("/v1/models/") :]
        if not may_use(ctx, model):
            _send(conn, _no_such_model(model))
            return None
        if model in config.models:
            conn.send_json(200, orjson.dumps(_model_object(model, config)))
            return None
        if config.wildcard is None:
            _send(conn, _no_such_model(model))
            return None
        return self._retrieve_upstream(conn, config.wildcard.balancer.pick(), model)

    async def _retrieve_upstream(
        self, conn: HttpConnection, deployment: Deployment, model: str
    ) -> None:
        provider = deployment.provider
        status, headers, data = await self._get(provider, "/models/" + model)
        if status == 404:
            _send(conn, _no_such_model(model))
        elif status >= 400:
            _send_upstream_error(conn, provider, status, headers, data)
        else:
            conn.send_json(status, data)

    async def _get(
        self, provider: ProviderRuntime, path: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        head = request_head(
            _GET, provider.path(path), provider.host, provider.headers, ((b"accept", _JSON),), 0
        )
        try:
            return await self.upstreams.pool(provider).fetch(head, _NO_BODY)
        except UpstreamError as exc:
            return exc.status, [], upstream_failure(provider, exc).body()


def _answer(
    conn: HttpConnection,
    provider: ProviderRuntime,
    status: int,
    headers: list[tuple[bytes, bytes]],
    data: bytes,
) -> None:
    if status >= 400:
        _send_upstream_error(conn, provider, status, headers, data)
    else:
        conn.send(status, [(b"content-type", _content_type(headers) or _JSON)], data)


def _responses_error_event(message: str, code: str) -> bytes:
    """A failure mid-stream, as the Responses API reports it (OpenAI's SDKs surface it as a
    ResponseErrorEvent)."""
    return (
        b"event: error\ndata: "
        + orjson.dumps(
            {"type": "error", "code": code, "message": message, "param": None, "sequence_number": 0}
        )
        + b"\n\n"
    )


def _no_endpoint(model: str, provider: ProviderRuntime, endpoint: Endpoint) -> GatewayError:
    return GatewayError(
        400,
        f"The model `{model}` is served by a {provider.kind.name} provider, "
        f"which has no {endpoint.path} endpoint.",
        param="model",
        code="unsupported_endpoint",
    )


def _model_object(name: str, config: RuntimeConfig) -> dict[str, Any]:
    deployment = config.models[name].deployments[0]
    out: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": config.created,
        "owned_by": deployment.provider.kind.name,
    }
    info = deployment.info
    if info is not None:
        # Beyond OpenAI's fields, what clients need to fit a request to the model.
        out["context_window"] = info.context_window
        out["max_output_tokens"] = info.max_output_tokens
    return out


def _no_such_model(model: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"content-type":
            return value
    return b""


_PASSED_ON = (b"retry-after", b"retry-after-ms")


def _send_upstream_error(
    conn: HttpConnection,
    provider: ProviderRuntime,
    status: int,
    headers: list[tuple[bytes, bytes]],
    data: bytes,
) -> None:
    """Pass an upstream's error on in OpenAI's shape, keeping its status and message.

    401 and 403 are the exception: they concern the gateway's credentials for the provider,
    not the client's, so the client gets a 502 that says so.
    """
    if status in (401, 403):
        _send(
            conn,
            GatewayError(
                502,
                f"Upstream provider '{provider.name}' rejected the "
                f"gateway's credentials (HTTP {status}).",
                code="upstream_auth_failed",
            ),
        )
        return
    passed = [(name, value) for name, value in headers if name in _PASSED_ON]
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        conn.send_json(status, data, passed)
        return
    text = data[:300].decode("utf-8", "replace").strip()
    message = f"Upstream provider '{provider.name}' returned HTTP {status}"
    _send(
        conn,
        GatewayError(
            status, f"{message}: {text}" if text else message + ".", code="upstream_error"
        ),
        passed,
    )
