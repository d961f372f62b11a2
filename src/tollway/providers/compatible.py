"""The OpenAI-compatible family, as data: how each provider differs from OpenAI.

Requests to these providers are forwarded as they are; a provider's quirks touch a request only
when it carries a parameter the provider treats differently. The table reflects each provider's
documentation as of 2026-11; a provider that changes is one line to change here.

- `rename`: parameters the provider spells differently (Mistral's `random_seed`).
- `drop`: parameters the provider would reject and whose absence changes nothing the caller
  relies on; dropped silently, as documented here.
- `refuse`: parameters the provider cannot honour: a 400 naming the parameter.
- `max_n`: the largest `n` (choices) the provider returns.
- `endpoints`: the OpenAI endpoints it serves; others answer 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.errors import GatewayError

CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"
RESPONSES = "/responses"
IMAGES = frozenset({"/images/generations", "/images/edits", "/images/variations"})
AUDIO = frozenset({"/audio/speech", "/audio/transcriptions", "/audio/translations"})
TRANSCRIPTION = frozenset({"/audio/transcriptions", "/audio/translations"})
MODERATIONS = "/moderations"
RERANK = "/rerank"
REALTIME = "/realtime"
# OpenAI's own endpoints; a server that is only "OpenAI-compatible" may have any of them, and
# rerank too (vLLM, Jina, TEI): what it lacks, it answers 404 to.
OPENAI_ENDPOINTS = (
    frozenset({CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MODERATIONS, REALTIME}) | IMAGES | AUDIO
)
ALL_ENDPOINTS = OPENAI_ENDPOINTS | {RERANK}
WITHOUT_RESPONSES = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
TEXT_ENDPOINTS = WITHOUT_RESPONSES | {RESPONSES}
# Azure OpenAI's deployment paths: no Responses API, moderations or image variations there;
# realtime is served by Azure's v1 API (ProviderType.path).
AZURE_ENDPOINTS = WITHOUT_RESPONSES | {"/images/generations", "/images/edits", REALTIME} | AUDIO


@dataclass(frozen=True, slots=True)
class Quirks:
    rename: Mapping[str, str] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    refuse: frozenset[str] = frozenset()
    max_n: int | None = None
    endpoints: frozenset[str] = ALL_ENDPOINTS

    @property
    def active(self) -> bool:
        return bool(self.rename or self.drop or self.refuse or self.max_n is not None)

    def apply(self, provider: str, body: dict[str, Any]) -> bool:
        """Adjust `body` in place for the provider; True if anything changed."""
        for key in self.refuse:
            if key in body:
                raise GatewayError(
                    400,
                    f"Parameter '{key}' is not supported by {provider}.",
                    param=key,
                    code="unsupported_parameter",
                )
        if self.max_n is not None and (body.get("n") or 1) > self.max_n:
            raise GatewayError(
                400,
                f"Parameter 'n' must be at most {self.max_n} for {provider}.",
                param="n",
                code="unsupported_parameter",
            )
        changed = False
        for key in self.drop:
            if key in body:
                del body[key]
                changed = True
        for old, new in self.rename.items():
            if old in body:
                body[new] = body.pop(old)
                changed = True
        return changed


NONE = Quirks()

# name -> (default base URL, quirks)
FAMILY: dict[str, tuple[str | None, Quirks]] = {
    "groq": (
        "https://api.groq.com/openai/v1",
        Quirks(
            refuse=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
            max_n=1,
            endpoints=frozenset({CHAT, RESPONSES}),
        ),
    ),
    "together": ("https://api.together.xyz/v1", Quirks(endpoints=WITHOUT_RESPONSES)),
    "fireworks": ("https://api.fireworks.ai/inference/v1", Quirks(endpoints=TEXT_ENDPOINTS)),
    "deepseek": (
        "https://api.deepseek.com/v1",
        Quirks(refuse=frozenset({"logit_bias"}), max_n=1, endpoints=frozenset({CHAT, COMPLETIONS})),
    ),
    "openrouter": (
        "https://openrouter.ai/api/v1",
        Quirks(endpoints=frozenset({CHAT, COMPLETIONS, RESPONSES})),
    ),
    "xai": ("https://api.x.ai/v1", Quirks(endpoints=frozenset({CHAT, COMPLETIONS, RESPONSES}))),
    "perplexity": (
        "https://api.perplexity.ai",
        Quirks(
            drop=frozenset({"seed", "user", "store", "metadata"}),
            refuse=frozenset(
                {"tools", "tool_choice", "logprobs", "top_logprobs", "logit_bias", "stop"}
            ),
            max_n=1,
            endpoints=frozenset({CHAT}),
        ),
    ),
    "mistral": (
        "https://api.mistral.ai/v1",
        Quirks(
            rename={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
            drop=frozenset({"user", "store", "metadata", "service_tier"}),
            refuse=frozenset({"logit_bias", "logprobs", "top_logprobs"}),
            endpoints=frozenset({CHAT, EMBEDDINGS}),
        ),
    ),
    "vllm": (
        None,
        Quirks(
            endpoints=frozenset({CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, RERANK}) | TRANSCRIPTION
        ),
    ),
    "ollama": ("http://127.0.0.1:11434/v1", Quirks(endpoints=WITHOUT_RESPONSES)),
    "lmstudio": ("http://127.0.0.1:1234/v1", Quirks(endpoints=WITHOUT_RESPONSES)),
}
