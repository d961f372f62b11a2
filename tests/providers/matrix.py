"""The conformance matrix's providers: one of each wire format (and a few of the OpenAI
family), each pointed at the shared mock provider, and the gateway configuration that serves
them, one public model per provider and mock behaviour."""

from __future__ import annotations

from typing import Any

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY

PROVIDERS = {
    "openai": "openai_compatible",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "bedrock": "bedrock",
    "cohere": "cohere",
    "azure": "azure",
    "mistral": "mistral",
    "groq": "groq",
}


def provider_config(kind: str, mock_url: str) -> dict[str, Any]:
    if kind == "azure":
        return {
            "type": "azure",
            "base_url": mock_url,
            "api_version": "2024-10-21",
            "api_key_env": "MOCK_KEY",
        }
    if kind == "gemini":
        return {"type": "gemini", "base_url": mock_url + "/v1beta", "api_key_env": "MOCK_KEY"}
    if kind == "bedrock":
        # SigV4-signed; the mock checks the signature with its key as the secret.
        return {
            "type": "bedrock",
            "region": "us-east-1",
            "base_url": mock_url,
            "aws_access_key_id_env": "MOCK_KEY",
            "aws_secret_access_key_env": "MOCK_KEY",
        }
    if kind == "cohere":
        return {"type": "cohere", "base_url": mock_url + "/v2", "api_key_env": "MOCK_KEY"}
    return {"type": kind, "base_url": mock_url + "/v1", "api_key_env": "MOCK_KEY"}


def gateway_config(mock_url: str, variants: dict[str, str]) -> dict[str, Any]:
    """A model `{provider}-{variant}` for every provider and variant, each variant's value a
    suffix for the upstream model name (mock settings after `~`, or a model name of its own
    when it does not start with `~`)."""
    return {
        "providers": {name: provider_config(kind, mock_url) for name, kind in PROVIDERS.items()},
        "models": {
            f"{provider}-{variant}": {
                "deployments": [
                    {
                        "provider": provider,
                        "model": suffix if suffix and suffix[0] != "~" else "mock-model" + suffix,
                    }
                ]
            }
            for provider in PROVIDERS
            for variant, suffix in variants.items()
        },
        "keys": [{"name": "conformance", "key_sha256": hash_key(CLIENT_KEY)}],
    }
