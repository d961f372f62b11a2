"""Calls that need a mapping: the client's format and the provider's differ.

request (client format) -> canonical -> provider adapter -> upstream
upstream -> provider adapter -> canonical -> client format -> client

Used when an OpenAI client calls a non-OpenAI provider, and when an Anthropic client calls a
non-Anthropic one. Same-format calls never come here: they are forwarded as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from tollway.config.snapshot import ProviderRuntime
from tollway.errors import GatewayError, error_payload
from tollway.llm import anthropic_messages
from tollway.providers.base import ChatAdapter, ProviderStreamError, UpstreamCall
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.forward import provider_error, upstream_failure
from tollway.proxy.upstream import Exchange, UpstreamError, UpstreamPool, Upstreams, request_head

log = logging.getLogger("tollway.proxy")

_JSON = b"application/json"
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class StreamEncoder(Protocol):
    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, status: int, message: str) -> bytes: ...


class ClientFormat(Protocol):
    """How the client expects answers: bodies, errors and stream events."""

    def body(self, completion: dict[str, Any], model: str) -> bytes: ...

    def error_body(self, error: GatewayError) -> bytes: ...

    def encoder(self, model: str, include_usage: bool) -> StreamEncoder: ...


class OpenAIStreamEncoder:
    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if not chunk.get("choices") and not self.include_usage:
            return b""
        if self.include_usage and chunk.get("choices"):
            chunk = {**chunk, "usage": None}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, status: int, message: str) -> bytes:
        return (
            b"data: "
            + orjson.dumps(
                error_payload(message, type="upstream_error", code="upstream_stream_interrupted")
            )
            + b"\n\n"
        )


class OpenAIClient:
    def body(self, completion: dict[str, Any], model: str) -> bytes:
        return orjson.dumps(completion)

    def error_body(self, error: GatewayError) -> bytes:
        return error.body()

    def encoder(self, model: str, include_usage: bool) -> StreamEncoder:
        return OpenAIStreamEncoder(include_usage)


class AnthropicClient:
    def body(self, completion: dict[str, Any], model: str) -> bytes:
        return orjson.dumps(anthropic_messages.to_message(completion, model))

    def error_body(self, error: GatewayError) -> bytes:
        return anthropic_messages.error_body(error.status, error.message)

    def encoder(self, model: str, include_usage: bool) -> StreamEncoder:
        return anthropic_messages.MessageEvents(model)


OPENAI_CLIENT = OpenAIClient()
ANTHROPIC_CLIENT = AnthropicClient()


def send_error(conn: HttpConnection, client: ClientFormat, error: GatewayError) -> None:
    conn.send_json(error.status, client.error_body(error))


def _head(
    provider: ProviderRuntime, call: UpstreamCall, model: str, request_id: bytes, accept: bytes
) -> bytes:
    """The upstream request head: the provider's own headers, the call's (which may name
    their own accept), and a signature over the request when the provider wants one."""
    path = provider.path(call.path, model)
    extra: list[tuple[bytes, bytes]] = [(b"content-type", _JSON), (b"x-request-id", request_id)]
    if not any(name == b"accept" for name, _ in call.headers):
        extra.append((b"accept", accept))
    extra.extend(call.headers)
    if provider.signer is not None:
        extra.extend(
            provider.signer.headers_for(
                call.method.decode(), provider.host.decode(), path.decode(), call.body
            )
        )
    return request_head(
        call.method, path, provider.host, provider.headers, tuple(extra), len(call.body)
    )


def _one_call(
    conn: HttpConnection,
    upstreams: Upstreams,
    provider: ProviderRuntime,
    model: str,
    request_id: bytes,
    client: ClientFormat,
    build: Callable[[], UpstreamCall],
    make: Callable[[UpstreamPool, bytes, bytes], Exchange],
) -> None:
    """Build the provider request, sign and send it as a callback exchange whose answer
    `make`'s exchange writes; a mapping refusal goes to the client in its format."""
    try:
        call = build()
    except GatewayError as error:
        send_error(conn, client, error)
        return
    head = _head(provider, call, model, request_id, _JSON)
    exchange = make(upstreams.pool(provider), head, call.body)
    conn.attach(exchange)
    exchange.start()


def translated_chat(
    conn: HttpConnection,
    upstreams: Upstreams,
    provider: ProviderRuntime,
    canonical: dict[str, Any],
    model: str,
    stream: bool,
    include_usage: bool,
    request_id: bytes,
    client: ClientFormat,
) -> Awaitable[None] | None:
    adapter = provider.kind.adapter
    if not stream:
        _one_call(
            conn,
            upstreams,
            provider,
            model,
            request_id,
            client,
            lambda: adapter.chat_call(canonical, model, False),
            lambda pool, head, body: _TranslatedCall(
                pool, head, body, conn, provider, model, client
            ),
        )
        return None
    try:
        call = adapter.chat_call(canonical, model, True)
    except GatewayError as error:
        send_error(conn, client, error)
        return None
    head = _head(provider, call, model, request_id, b"text/event-stream")
    return _stream(
        conn,
        upstreams.pool(provider),
        head,
        call.body,
        provider,
        adapter,
        model,
        include_usage,
        client,
    )


class _TranslatedCall(Exchange):
    __slots__ = ("client", "client_format", "model", "provider")

    def respond(self, body: bytes) -> bytes:
        """The client's answer for the provider's successful response body."""
        completion = self.provider.kind.adapter.chat_response(body, self.model)
        return self.client_format.body(completion, self.model)

    def __init__(
        self,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        client: HttpConnection,
        provider: ProviderRuntime,
        model: str,
        client_format: ClientFormat,
    ) -> None:
        super().__init__(pool, head, body)
        self.client = client
        self.provider = provider
        self.model = model
        self.client_format = client_format

    def on_result(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        error: UpstreamError | None,
    ) -> None:
        try:
            if error is not None:
                send_error(self.client, self.client_format, upstream_failure(self.provider, error))
            elif status >= 400:
                send_error(
                    self.client, self.client_format, provider_error(self.provider, status, body)
                )
            else:
                self.client.send_json(200, self.respond(body))
        except GatewayError as failure:
            send_error(self.client, self.client_format, failure)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            log.exception("could not map the response of provider %s", self.provider.name)
            send_error(
                self.client,
                self.client_format,
                GatewayError(
                    502,
                    f"Upstream provider '{self.provider.name}' returned a response that could "
                    "not be read.",
                    code="upstream_protocol",
                    type="upstream_error",
                ),
            )
        except Exception:
            log.exception("answering a translated call failed")
            self.client.abort()


async def _stream(
    conn: HttpConnection,
    pool: UpstreamPool,
    head: bytes,
    body: bytes,
    provider: ProviderRuntime,
    adapter: ChatAdapter,
    model: str,
    include_usage: bool,
    client: ClientFormat,
) -> None:
    try:
        upstream = await pool.open(head, body)
        if upstream.status >= 400:
            data = await upstream.read_all()
            send_error(conn, client, provider_error(provider, upstream.status, data))
            return
    except UpstreamError as exc:
        send_error(conn, client, upstream_failure(provider, exc))
        return
    translator = adapter.chat_stream(model)
    encoder = client.encoder(model, include_usage)
    conn.start_stream(200, _SSE_HEADERS, lambda message: encoder.error(503, message))
    try:
        while True:
            data = await upstream.next_chunk()
            if data is None:
                break
            out = b"".join([encoder.feed(chunk) for chunk in translator.feed(data)])
            if out:
                conn.write_chunk(out)
                await conn.drain()
        tail = b"".join([encoder.feed(chunk) for chunk in translator.finish()])
        conn.write_chunk(tail + encoder.finish())
    except ProviderStreamError as exc:
        conn.write_chunk(encoder.error(exc.error.status, exc.error.message))
    except UpstreamError as exc:
        failure = upstream_failure(provider, exc)
        conn.write_chunk(encoder.error(failure.status, failure.message))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        # ValueError covers undecodable text and events past the size bound.
        log.exception("could not map the stream of provider %s", provider.name)
        conn.write_chunk(
            encoder.error(
                502, f"Upstream provider '{provider.name}' sent a stream that could not be read."
            )
        )
    finally:
        if not upstream.done:
            upstream.abort()
    conn.end_stream()


def translated_embeddings(
    conn: HttpConnection,
    upstreams: Upstreams,
    provider: ProviderRuntime,
    request: dict[str, Any],
    model: str,
    request_id: bytes,
) -> Awaitable[None] | None:
    """OpenAI's /v1/embeddings on a provider with its own embeddings API."""
    adapter = provider.kind.adapter
    if not hasattr(adapter, "embeddings_call"):
        send_error(
            conn,
            OPENAI_CLIENT,
            GatewayError(
                400,
                f"The model `{request.get('model')}` is served by a {provider.kind.name} "
                "provider, which has no embeddings endpoint.",
                param="model",
                code="unsupported_endpoint",
            ),
        )
        return None
    _one_call(
        conn,
        upstreams,
        provider,
        model,
        request_id,
        OPENAI_CLIENT,
        lambda: adapter.embeddings_call(request, model),
        lambda pool, head, body: _TranslatedEmbeddings(
            pool, head, body, conn, provider, model, request
        ),
    )
    return None


class _TranslatedEmbeddings(_TranslatedCall):
    __slots__ = ("request",)

    def __init__(
        self,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        client: HttpConnection,
        provider: ProviderRuntime,
        model: str,
        request: dict[str, Any],
    ) -> None:
        super().__init__(pool, head, body, client, provider, model, OPENAI_CLIENT)
        self.request = request

    def respond(self, body: bytes) -> bytes:
        adapter: Any = self.provider.kind.adapter
        return orjson.dumps(adapter.embeddings_response(body, self.model, self.request))


def translated_count_tokens(
    conn: HttpConnection,
    upstreams: Upstreams,
    provider: ProviderRuntime,
    canonical: dict[str, Any],
    model: str,
    request_id: bytes,
) -> Awaitable[None] | None:
    """Anthropic's count_tokens, answered by the provider's own exact counting endpoint."""
    adapter: Any = provider.kind.adapter
    if not hasattr(adapter, "count_tokens_call"):
        # Exact counts need the provider's tokenizer or endpoint; this provider offers
        # neither, and an estimate would not be exact.
        send_error(
            conn,
            ANTHROPIC_CLIENT,
            GatewayError(
                400,
                f"count_tokens is not available for `{canonical.get('model')}`: its provider "
                f"({provider.kind.name}) has no exact token count endpoint.",
            ),
        )
        return None
    _one_call(
        conn,
        upstreams,
        provider,
        model,
        request_id,
        ANTHROPIC_CLIENT,
        lambda: adapter.count_tokens_call(canonical, model),
        lambda pool, head, body: _CountedTokens(
            pool, head, body, conn, provider, model, ANTHROPIC_CLIENT
        ),
    )
    return None


class _CountedTokens(_TranslatedCall):
    __slots__ = ()

    def respond(self, body: bytes) -> bytes:
        adapter: Any = self.provider.kind.adapter
        return orjson.dumps({"input_tokens": adapter.count_tokens_response(body)})
