"""Translated calls: the client's API and the provider's differ.

request (client API) -> canonical -> provider adapter -> upstream
upstream -> provider adapter -> canonical -> client API -> client

Used when an OpenAI client calls a non-OpenAI provider, when an Anthropic client calls a
non-Anthropic one, and when a Responses client calls a provider without a Responses API of
its own. Each operation (chat, Responses, embeddings, token counting, images, rerank) is one
`Translation`: whether the provider offers it, how the adapter builds the upstream request,
where it goes (`target`: Bedrock's rerank has a host of its own), and how it reads the answer
back into the canonical form.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tollway.config.snapshot import ProviderRuntime
from tollway.config.transport import head_prefix
from tollway.errors import GatewayError
from tollway.llm import tokens
from tollway.llm.client_apis import ClientApi, credentials_refused
from tollway.policies.context import RequestContext
from tollway.providers.base import ProviderResponseError, UpstreamCall
from tollway.providers.compatible import CHAT
from tollway.proxy.connection import HttpConnection
from tollway.proxy.replies import finish, send_error, served_headers

log = logging.getLogger("tollway.proxy")

_JSON = b"application/json"
_SSE = b"text/event-stream"


class Translation:
    """Chat completions: every adapter has them (a provider that speaks the client's API is
    never translated to: its endpoint is there or not)."""

    def available(self, provider: ProviderRuntime, api: ClientApi) -> bool:
        return not provider.serves_natively(api)

    def call(
        self, provider: ProviderRuntime, canonical: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        return provider.kind.adapter.chat_call(canonical, model, stream)

    def result(
        self, provider: ProviderRuntime, body: bytes, model: str, canonical: dict[str, Any]
    ) -> dict[str, Any]:
        return provider.kind.adapter.chat_response(body, model)

    def target(self, provider: ProviderRuntime) -> ProviderRuntime:
        """The runtime the call goes to: the provider, or its second host for an operation
        served there (Bedrock's rerank, on its agent runtime)."""
        return provider

    def head(
        self,
        provider: ProviderRuntime,
        call: UpstreamCall,
        model: str,
        request_id: bytes,
        stream: bool,
        trace_parent: bytes | None = None,
    ) -> bytes:
        """The upstream request head: the provider's own headers, the call's (which may name
        their own accept), and a signature over the request when the provider wants one."""
        path = provider.path(call.path, model)
        extra: list[tuple[bytes, bytes]] = [(b"content-type", _JSON), (b"x-request-id", request_id)]
        if trace_parent is not None:
            extra.append((b"traceparent", trace_parent))
        if not any(name == b"accept" for name, _ in call.headers):
            extra.append((b"accept", _SSE if stream else _JSON))
        extra.extend(call.headers)
        if provider.signer is not None:
            extra.extend(
                provider.signer.headers_for(
                    call.method.decode(), provider.host.decode(), path.decode(), call.body
                )
            )
        prefix = head_prefix(call.method, path, provider.host, (*provider.headers, *extra))
        return prefix + b"content-length: %d\r\n\r\n" % len(call.body)


class ResponsesTranslation(Translation):
    """OpenAI's Responses API through chat: on every provider without a Responses API, the
    OpenAI-format ones included when they serve chat completions."""

    def available(self, provider: ProviderRuntime, api: ClientApi) -> bool:
        return not provider.serves_natively(api) or CHAT in provider.kind.quirks.endpoints


class EmbeddingsTranslation(Translation):
    """OpenAI's /v1/embeddings on a provider with its own embeddings API."""

    def available(self, provider: ProviderRuntime, api: ClientApi) -> bool:
        return provider.kind.embeddings is not None and not provider.serves_natively(api)

    def call(
        self, provider: ProviderRuntime, canonical: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        assert provider.kind.embeddings is not None
        return provider.kind.embeddings.embeddings_call(canonical, model)

    def result(
        self, provider: ProviderRuntime, body: bytes, model: str, canonical: dict[str, Any]
    ) -> dict[str, Any]:
        assert provider.kind.embeddings is not None
        return provider.kind.embeddings.embeddings_response(body, model, canonical)


class TokenCountTranslation(Translation):
    """Anthropic's count_tokens, answered by the provider's own exact counting endpoint where
    it has one (else counted here: `count_locally`)."""

    def available(self, provider: ProviderRuntime, api: ClientApi) -> bool:
        return provider.kind.token_counting is not None and not provider.serves_natively(api)

    def call(
        self, provider: ProviderRuntime, canonical: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        assert provider.kind.token_counting is not None
        return provider.kind.token_counting.count_tokens_call(canonical, model)

    def result(
        self, provider: ProviderRuntime, body: bytes, model: str, canonical: dict[str, Any]
    ) -> dict[str, Any]:
        assert provider.kind.token_counting is not None
        return {"input_tokens": provider.kind.token_counting.count_tokens_response(body)}


class ImagesTranslation(Translation):
    """OpenAI's image generation on a provider whose models answer with images (Gemini,
    Bedrock)."""

    def available(self, provider: ProviderRuntime, api: ClientApi) -> bool:
        return (
            api.endpoint == "/images/generations"
            and provider.kind.images is not None
            and not provider.serves_natively(api)
        )

    def call(
        self, provider: ProviderRuntime, canonical: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        assert provider.kind.images is not None
        return provider.kind.images.images_call(canonical, model)

    def result(
        self, provider: ProviderRuntime, body: bytes, model: str, canonical: dict[str, Any]
    ) -> dict[str, Any]:
        assert provider.kind.images is not None
        return provider.kind.images.images_response(body, model)


class RerankTranslation(Translation):
    """Cohere's rerank on a provider with rerank models of its own (Bedrock's), served on the
    provider's agent-runtime host."""

    def available(self, provider: ProviderRuntime, api: ClientApi) -> bool:
        return provider.kind.rerank is not None and provider.agent_runtime is not None

    def call(
        self, provider: ProviderRuntime, canonical: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        assert provider.kind.rerank is not None and provider.region is not None
        return provider.kind.rerank.rerank_call(canonical, model, provider.region)

    def result(
        self, provider: ProviderRuntime, body: bytes, model: str, canonical: dict[str, Any]
    ) -> dict[str, Any]:
        assert provider.kind.rerank is not None
        return provider.kind.rerank.rerank_response(body, canonical)

    def target(self, provider: ProviderRuntime) -> ProviderRuntime:
        assert provider.agent_runtime is not None
        return provider.agent_runtime


TRANSLATIONS: dict[str, Translation] = {
    "chat": Translation(),
    "responses": ResponsesTranslation(),
    "embeddings": EmbeddingsTranslation(),
    "count_tokens": TokenCountTranslation(),
    "images": ImagesTranslation(),
    "rerank": RerankTranslation(),
}


async def count_locally(
    ctx: RequestContext,
    conn: HttpConnection,
    api: ClientApi,
    canonical: dict[str, Any],
    model: str,
) -> None:
    """count_tokens for a provider without a counting endpoint: counted here, with the model's
    own encoding where OpenAI names one, else the documented approximation (llm/tokens.py).
    In a thread: loading an encoding's table and counting a long conversation take long
    enough to matter to every other call on this worker."""
    try:
        counter = tokens.counter_for(model)
        counted = await asyncio.to_thread(counter.chat, canonical)
        ctx.status = 200
        ctx.outcome = "completed"
        conn.send_json(
            200,
            api.render({"input_tokens": counted}, model),
            [(b"x-tollway-token-count", b"exact" if counter.exact else b"approximate")],
        )
    finally:
        finish(ctx)


def unavailable(model: str, provider: ProviderRuntime, api: ClientApi) -> GatewayError:
    return GatewayError(
        400,
        f"The model `{model}` is served by a {provider.kind.name} provider, "
        f"which has no {api.endpoint} endpoint.",
        param="model",
        code="unsupported_endpoint",
    )


def answer_translated(
    ctx: RequestContext,
    conn: HttpConnection,
    api: ClientApi,
    provider: ProviderRuntime,
    translation: Translation,
    model: str,
    canonical: dict[str, Any],
    status: int,
    body: bytes,
    request: dict[str, Any] | None = None,
) -> None:
    """The client's answer for a translated call's upstream answer (`request`: the client's
    own, which some APIs' answers echo)."""
    served = served_headers(ctx)
    if status >= 400:
        ctx.outcome = "upstream_error"
        send_error(ctx, conn, provider_error(provider, status, body), served)
        return
    try:
        result = translation.result(provider, body, model, canonical)
    except ProviderResponseError as exc:
        log.warning("provider %s answered what could not be read: %s", provider.name, exc)
        ctx.outcome = "upstream_error"
        send_error(
            ctx,
            conn,
            GatewayError(
                502,
                f"Upstream provider '{provider.name}' returned a response that could not be read.",
                code="upstream_protocol",
                type="upstream_error",
            ),
            served,
        )
        return
    except GatewayError as error:
        ctx.outcome = "upstream_error"
        send_error(ctx, conn, error, served)
        return
    usage = result.get("usage")
    ctx.usage = usage if isinstance(usage, dict) else None
    ctx.outcome = "completed"
    ctx.status = 200
    answer = api.render(result, model, request)
    ctx.response_body = answer
    conn.send_json(200, answer, served)


def provider_error(provider: ProviderRuntime, status: int, body: bytes) -> GatewayError:
    """The provider's error for the client. 401/403 concern the gateway's own credentials."""
    if status in (401, 403):
        return credentials_refused(provider.name, status)
    return provider.kind.adapter.error(status, body)
