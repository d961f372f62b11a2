from __future__ import annotations

import hashlib

import pytest

from tollway.config.compile import compile_config, hash_key
from tollway.config.load import ConfigError, validate_config


def compiled(data: dict[str, object], environ: dict[str, str] | None = None):
    return compile_config(validate_config(data), environ or {})


def test_provider_secret_comes_from_the_environment_and_is_not_in_repr() -> None:
    runtime = compiled(
        {
            "providers": {
                "p": {
                    "base_url": "https://api.example.com/v1/",
                    "api_key_env": "K",
                    "headers": {"X-Org": "acme"},
                }
            },
            "models": {"m": {"deployments": [{"provider": "p", "model": "up"}]}},
        },
        {"K": "sk-secret"},
    )
    provider = runtime.models["m"].deployments[0].provider
    assert (b"authorization", b"Bearer sk-secret") in provider.headers
    assert (b"x-org", b"acme") in provider.headers
    assert provider.host == b"api.example.com"
    assert provider.path("/chat/completions") == b"/v1/chat/completions"
    assert "sk-secret" not in repr(runtime)


def test_missing_secrets_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        compiled(
            {
                "providers": {"p": {"base_url": "http://x", "api_key_env": "NOPE"}},
                "keys": [{"name": "a", "key_env": "ALSO_NOPE"}],
            }
        )
    assert len(info.value.problems) == 2


def test_keys_are_held_as_digests_and_enable_key_auth() -> None:
    runtime = compiled(
        {"keys": [{"name": "a", "key_sha256": hash_key("one")}, {"name": "b", "api_key_env": "B"}]},
        {"B": "two"},
    )
    assert set(runtime.keys) == {hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()}
    assert runtime.auth_required
    assert runtime.pipeline.names == ("key_auth",)


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="also configured as 'a'"):
        compiled(
            {
                "keys": [
                    {"name": "a", "key_sha256": hash_key("x")},
                    {"name": "b", "api_key_env": "B"},
                ]
            },
            {"B": "x"},
        )


def test_no_keys_means_an_empty_pipeline() -> None:
    runtime = compiled({})
    assert not runtime.auth_required
    assert runtime.pipeline.names == ()


def test_wildcard_routes_unknown_names() -> None:
    runtime = compiled(
        {
            "providers": {"p": {"base_url": "http://x"}},
            "models": {
                "*": {"deployments": [{"provider": "p"}]},
                "named": {"deployments": [{"provider": "p", "model": "n"}]},
            },
        }
    )
    assert runtime.route("named") is runtime.models["named"]
    assert runtime.route("anything") is runtime.wildcard
    assert "*" not in runtime.models


def test_openai_type_defaults_its_base_url() -> None:
    runtime = compiled(
        {
            "providers": {"o": {"type": "openai"}},
            "models": {"m": {"deployments": [{"provider": "o"}]}},
        }
    )
    provider = runtime.models["m"].deployments[0].provider
    assert provider.origin.scheme == "https" and provider.origin.port == 443
    assert provider.path("/models") == b"/v1/models"


def test_key_model_allowlists() -> None:
    runtime = compiled(
        {"keys": [{"name": "a", "key_sha256": hash_key("k"), "models": ["gpt-4o", "claude-*"]}]}
    )
    key = runtime.keys[hashlib.sha256(b"k").digest()]
    assert key.may_use("gpt-4o") and key.may_use("claude-sonnet-4-5")
    assert not key.may_use("gpt-4o-mini") and not key.may_use("o3")


def test_a_secret_held_as_a_value_needs_no_environment() -> None:
    runtime = compiled(
        {
            "providers": {"p": {"base_url": "https://x/v1", "credentials": {"api_key": "sk-held"}}},
            "models": {"m": {"deployments": [{"provider": "p"}]}},
        }
    )
    provider = runtime.models["m"].deployments[0].provider
    assert (b"authorization", b"Bearer sk-held") in provider.headers
    assert "sk-held" not in repr(runtime)


def test_bedrock_signs_with_held_credentials() -> None:
    runtime = compiled(
        {
            "providers": {
                "b": {
                    "type": "bedrock",
                    "region": "us-east-1",
                    "credentials": {
                        "aws_access_key_id": "AKIDEXAMPLE",
                        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    },
                }
            },
            "models": {"m": {"deployments": [{"provider": "b", "model": "anthropic.claude"}]}},
        }
    )
    assert runtime.models["m"].deployments[0].provider.signer is not None


def test_tracing_is_in_the_chain_only_when_an_otlp_endpoint_is_set() -> None:
    data = {"keys": [{"name": "a", "key_sha256": hash_key("one")}]}
    assert compiled(data).pipeline.names == ("key_auth",)
    traced = compiled(data, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert traced.pipeline.names == ("trace", "key_auth")
    off = compiled(
        data, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert off.pipeline.names == ("key_auth",)


def test_media_apis_are_routed_with_heads_for_their_bodies() -> None:
    runtime = compiled(
        {
            "providers": {
                "o": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
                "az": {
                    "type": "azure",
                    "base_url": "https://r.openai.azure.com",
                    "api_key_env": "K",
                    "api_version": "2025-04-01-preview",
                },
                "co": {"type": "cohere", "api_key_env": "K"},
                "an": {"type": "anthropic", "api_key_env": "K"},
            },
            "models": {
                "m": {"deployments": [{"provider": "o"}]},
                "a": {"deployments": [{"provider": "az", "model": "dall-e-3"}]},
                "r": {"deployments": [{"provider": "co", "model": "rerank-v3.5"}]},
                "c": {"deployments": [{"provider": "an", "model": "claude"}]},
            },
        },
        {"K": "k"},
    )
    for path in (
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/images/variations",
        "/v1/audio/speech",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/moderations",
        "/v1/rerank",
        "/v2/rerank",
    ):
        entry = runtime.routes.exact[path]["POST"]
        assert entry.handler == "model_call" and entry.api is not None, path
    heads = runtime.models["m"].deployments[0].native_heads
    # A form's content type is the client's (its boundary): not in the compiled head.
    edits = heads[("openai.images_edits", False)]
    assert b"POST /v1/images/edits HTTP/1.1" in edits and b"content-type" not in edits
    speech = heads[("openai.audio_speech", True)]
    assert b"accept: */*" in speech and b"content-type: application/json" in speech
    assert ("rerank", False) in heads
    azure = runtime.models["a"].deployments[0].native_heads
    assert (
        b"/openai/deployments/dall-e-3/images/generations?api-version="
        in azure[("openai.images_generations", False)]
    )
    assert ("openai.moderations", False) not in azure  # not at Azure's deployment paths
    cohere = runtime.models["r"].deployments[0].native_heads
    assert list(cohere) == [("rerank", False)]
    assert b"POST /v2/rerank HTTP/1.1" in cohere[("rerank", False)]
    assert not runtime.models["c"].deployments[0].native_heads.get(("rerank", False))
