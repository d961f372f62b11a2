"""Base URLs in the forms users copy from each provider's own SDK or docs."""

from __future__ import annotations

import pytest

from tollway.config.load import ConfigError, validate_config
from tollway.providers.registry import base_url_for


@pytest.mark.parametrize(
    ("kind", "given", "used"),
    [
        # The Anthropic SDK (and Claude Code) take the host alone; the gateway needs /v1.
        ("anthropic", "https://api.anthropic.com", "https://api.anthropic.com/v1"),
        ("anthropic", "https://api.anthropic.com/v1/", "https://api.anthropic.com/v1"),
        ("anthropic", "https://proxy.corp/anthropic", "https://proxy.corp/anthropic/v1"),
        # google-genai takes the host, with the API version apart.
        (
            "gemini",
            "https://generativelanguage.googleapis.com",
            "https://generativelanguage.googleapis.com/v1beta",
        ),
        (
            "gemini",
            "https://generativelanguage.googleapis.com/v1",
            "https://generativelanguage.googleapis.com/v1",
        ),
        ("cohere", "https://api.cohere.com", "https://api.cohere.com/v2"),
        ("cohere", "https://api.cohere.com/v2", "https://api.cohere.com/v2"),
        # The OpenAI family: a bare host gets the type's usual path, any other path stays.
        ("openai", "https://api.openai.com", "https://api.openai.com/v1"),
        ("groq", "https://api.groq.com", "https://api.groq.com/openai/v1"),
        ("mistral", "https://api.mistral.ai", "https://api.mistral.ai/v1"),
        ("ollama", "http://127.0.0.1:11434", "http://127.0.0.1:11434/v1"),
        ("openai_compatible", "http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("vllm", "http://gpu-box:8000/v1", "http://gpu-box:8000/v1"),
        ("azure", "https://acme.openai.azure.com/", "https://acme.openai.azure.com"),
    ],
)
def test_sdk_forms_become_the_gateways(kind: str, given: str, used: str) -> None:
    assert base_url_for(kind, given) == used
    config = validate_config(
        {"providers": {"p": {"type": kind, "base_url": given, **_extra(kind)}}}
    )
    assert config.providers["p"].resolved_base_url == used


@pytest.mark.parametrize(
    ("kind", "given", "says"),
    [
        ("anthropic", "https://api.anthropic.com/v2", "end the URL with /v1"),
        ("cohere", "https://api.cohere.com/v1", "v2 API of cohere"),
        ("azure", "https://acme.openai.azure.com/openai/deployments/x", "without /openai"),
    ],
)
def test_forms_that_cannot_be_meant_are_refused_saying_which_to_use(
    kind: str, given: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"providers": {"p": {"type": kind, "base_url": given, **_extra(kind)}}})
    assert says in str(info.value)


def _extra(kind: str) -> dict[str, str]:
    return {"api_version": "2024-10-21"} if kind == "azure" else {}
