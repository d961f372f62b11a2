"""Provider types: how to reach each wire format, authenticate to it, and map to it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from tollway.providers.anthropic import API_VERSION, AnthropicAdapter
from tollway.providers.base import (
    ChatAdapter,
    EmbeddingsAdapter,
    ImagesAdapter,
    RerankAdapter,
    TokenCountingAdapter,
)
from tollway.providers.bedrock import BedrockAdapter
from tollway.providers.bedrock_media import BedrockMediaAdapter
from tollway.providers.cohere import CohereAdapter
from tollway.providers.compatible import (
    AZURE_ENDPOINTS,
    FAMILY,
    NONE,
    OPENAI_ENDPOINTS,
    REALTIME,
    RERANK,
    Quirks,
)
from tollway.providers.gemini import GeminiAdapter
from tollway.providers.openai import OpenAIAdapter


@dataclass(frozen=True, slots=True)
class ProviderType:
    name: str
    default_base_url: str | None
    adapter: ChatAdapter
    auth_headers: Callable[[str], tuple[tuple[bytes, bytes], ...]]
    # Serves OpenAI's /chat/completions, /completions, /embeddings as they are.
    openai_native: bool = False
    # Serves Anthropic's /messages as it is.
    anthropic_native: bool = False
    # Headers every request carries, secret or not.
    fixed_headers: tuple[tuple[bytes, bytes], ...] = ()
    # How an OpenAI-format provider differs from OpenAI.
    quirks: Quirks = NONE
    # Azure style: the model (deployment) is in the path, with an api-version query.
    deployment_paths: bool = False
    # What the adapter offers beyond chat, for clients whose API the provider does not speak:
    # OpenAI's embeddings through the provider's own, and an exact token count.
    embeddings: EmbeddingsAdapter | None = None
    token_counting: TokenCountingAdapter | None = None
    # OpenAI's image generation through the provider's models that answer with images.
    images: ImagesAdapter | None = None
    # Cohere's rerank through the provider's own rerank models (Bedrock's, on its agent
    # runtime host: ProviderRuntime.agent_runtime).
    rerank: RerankAdapter | None = None
    # The API version segment the gateway's paths need at the end of the base URL, added when
    # a base URL is given as the provider's SDKs take it (without one).
    version_path: str | None = None

    def path(self, base_path: str, endpoint: str, model: str, api_version: str | None) -> str:
        if self.deployment_paths and endpoint == REALTIME:
            # Azure serves realtime on its v1 API only: no deployment path, no api-version;
            # the deployment is the `model` of the query (the realtime relay puts it there).
            return f"{base_path}/openai/v1{endpoint}"
        if self.deployment_paths:
            # The model can come from the client (a '*' route): encode it, '/' included, so it
            # cannot climb out of its path segment or start a query.
            return (
                f"{base_path}/openai/deployments/{quote(model, safe='')}{endpoint}"
                f"?api-version={quote(api_version or '', safe='')}"
            )
        return base_path + endpoint


def _bearer(secret: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"authorization", b"Bearer " + secret.encode()),)


def _x_api_key(secret: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"x-api-key", secret.encode()),)


def _goog_api_key(secret: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"x-goog-api-key", secret.encode()),)


def _api_key(secret: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"api-key", secret.encode()),)


_OPENAI = OpenAIAdapter()
_GEMINI = GeminiAdapter()
_COHERE = CohereAdapter()
_BEDROCK = BedrockAdapter()
_BEDROCK_MEDIA = BedrockMediaAdapter()

TYPES: dict[str, ProviderType] = {
    "openai": ProviderType(
        "openai",
        "https://api.openai.com/v1",
        _OPENAI,
        _bearer,
        openai_native=True,
        quirks=Quirks(endpoints=OPENAI_ENDPOINTS),
    ),
    "openai_compatible": ProviderType(
        "openai_compatible", None, _OPENAI, _bearer, openai_native=True
    ),
    # Azure's Responses API lives outside the deployment paths: not routed there yet.
    "azure": ProviderType(
        "azure",
        None,
        _OPENAI,
        _api_key,
        openai_native=True,
        deployment_paths=True,
        quirks=Quirks(endpoints=AZURE_ENDPOINTS),
    ),
    "anthropic": ProviderType(
        "anthropic",
        "https://api.anthropic.com/v1",
        AnthropicAdapter(),
        _x_api_key,
        anthropic_native=True,
        fixed_headers=((b"anthropic-version", API_VERSION),),
        version_path="/v1",
    ),
    "gemini": ProviderType(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        _GEMINI,
        _goog_api_key,
        token_counting=_GEMINI,
        images=_GEMINI,
        version_path="/v1beta",
    ),
    # The base URL follows from the region; SigV4 signing or a Bedrock API key (Bearer).
    "bedrock": ProviderType(
        "bedrock",
        None,
        _BEDROCK,
        _bearer,
        token_counting=_BEDROCK,
        images=_BEDROCK_MEDIA,
        rerank=_BEDROCK_MEDIA,
    ),
    "cohere": ProviderType(
        "cohere",
        "https://api.cohere.com/v2",
        _COHERE,
        _bearer,
        embeddings=_COHERE,
        version_path="/v2",
        # Cohere's own API is not OpenAI's, but its rerank is the shape the gateway serves.
        quirks=Quirks(endpoints=frozenset({RERANK})),
    ),
    # Vertex AI: base URL .../v1/projects/P/locations/L/publishers/google, an OAuth token.
    "vertex": ProviderType(
        "vertex", None, _GEMINI, _bearer, token_counting=_GEMINI, images=_GEMINI
    ),
    **{
        name: ProviderType(name, url, _OPENAI, _bearer, openai_native=True, quirks=quirks)
        for name, (url, quirks) in FAMILY.items()
    },
}


_VERSION = re.compile(r"/v\d+(?:alpha\d*|beta\d*)?$")


def base_url_for(type_name: str, url: str) -> str:
    """A provider's base URL as the gateway's paths need it, from the forms users copy from
    each provider's own SDK or docs:

    - Anthropic, Gemini and Cohere: with or without the API version segment (their SDKs take
      the host alone): the segment is added when missing (/v1, /v1beta, /v2).
    - The OpenAI-compatible family: a bare host (no path) gets the type's usual path (OpenAI's
      /v1, Groq's /openai/v1, ...); any other path is kept as given.
    - Azure: the resource's URL, without /openai (the gateway adds the deployment path).

    Raises ValueError, saying which form to use, for a URL that cannot be meant."""
    kind = TYPES.get(type_name)
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if kind is None:
        return url.rstrip("/")
    if type_name == "azure" and "/openai" in path:
        raise ValueError(
            "give the Azure resource's URL without /openai (e.g. https://NAME.openai.azure.com): "
            "the gateway adds /openai/deployments/<model>"
        )
    if kind.version_path is not None:
        found = _VERSION.search(path)
        if found is None:
            path += kind.version_path
        elif type_name in ("anthropic", "cohere") and found.group(0) != kind.version_path:
            raise ValueError(
                f"the gateway speaks the {kind.version_path[1:]} API of {type_name}: end the URL "
                f"with {kind.version_path}, or leave the version out"
            )
    elif not path and kind.default_base_url is not None:
        path = urlsplit(kind.default_base_url).path.rstrip("/")
    return urlunsplit(parts._replace(path=path)).rstrip("/")
