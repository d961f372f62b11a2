"""Bedrock's image and rerank models: OpenAI's image generation and Cohere's rerank mapped to
InvokeModel and the agent runtime's Rerank, against the shapes AWS documents; and how a
Bedrock provider reaches its agent-runtime host."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.config.compile import compile_config
from tollway.config.load import ConfigError, validate_config
from tollway.errors import GatewayError
from tollway.llm.media_apis import RERANK
from tollway.providers.base import ProviderResponseError
from tollway.providers.bedrock_media import (
    BedrockMediaAdapter,
    agent_runtime_url,
    image_family,
    model_arn,
)
from tollway.proxy.handlers.translated import TRANSLATIONS

ADAPTER = BedrockMediaAdapter()
NOVA = "amazon.nova-canvas-v1:0"
TITAN = "amazon.titan-image-generator-v2:0"
SD = "stability.sd3-5-large-v1:0"


def invoke(request: dict[str, Any], model: str = NOVA) -> Any:
    call = ADAPTER.images_call({"model": "pictures", "prompt": "a kite", **request}, model)
    assert call.path == f"/model/{model.replace(':', '%3A')}/invoke"
    return orjson.loads(call.body)


def refused(request: dict[str, Any], model: str = NOVA) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        invoke(request, model)
    assert info.value.status == 400
    return info.value


def test_nova_and_titan_take_count_size_and_quality() -> None:
    assert invoke({"n": 3, "size": "1280x720", "quality": "hd"}) == {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a kite"},
        "imageGenerationConfig": {
            "numberOfImages": 3,
            "width": 1280,
            "height": 720,
            "quality": "premium",
        },
    }
    titan = invoke({"size": "1173x640", "quality": "standard"}, TITAN)["imageGenerationConfig"]
    assert titan == {"numberOfImages": 1, "width": 1173, "height": 640, "quality": "standard"}
    # auto, and no size or quality: the model's defaults.
    assert invoke({"size": "auto", "quality": "auto"})["imageGenerationConfig"] == {
        "numberOfImages": 1
    }
    assert invoke({"quality": "medium"})["imageGenerationConfig"]["quality"] == "standard"


@pytest.mark.parametrize(
    ("size", "model"),
    [
        ("1000x1000", NOVA),  # not a multiple of 16
        ("4096x4096", NOVA),  # over 4,194,304 pixels
        ("2048x320", NOVA),  # wider than 4:1
        ("256x256", NOVA),  # a side under 320
        ("1000x1000", TITAN),  # not one of Titan's sizes
        ("1792x1024", SD),  # 7:4, not an aspect ratio Stability takes
        ("big", NOVA),
    ],
)
def test_a_size_the_model_cannot_make_is_refused_naming_size(size: str, model: str) -> None:
    error = refused({"size": size}, model)
    assert error.param == "size" and size.split("x")[0] in error.message


def test_stability_takes_an_aspect_ratio_and_one_image() -> None:
    assert invoke({"size": "1920x1080", "output_format": "webp"}, SD) == {
        "prompt": "a kite",
        "output_format": "webp",
        "aspect_ratio": "16:9",
    }
    assert invoke({}, "stability.stable-image-ultra-v1:1") == {
        "prompt": "a kite",
        "output_format": "png",
    }
    assert refused({"n": 2}, SD).param == "n"
    assert refused({"quality": "hd"}, SD).param == "quality"


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        ({"response_format": "url"}, "response_format"),
        ({"style": "vivid"}, "style"),
        ({"stream": True}, "stream"),
        ({"n": 6}, "n"),
        ({"n": 0}, "n"),
        ({"quality": "ultra"}, "quality"),
        ({"output_format": "jpeg"}, "output_format"),
        ({"background": "transparent"}, "background"),
    ],
)
def test_what_bedrock_cannot_honour_is_refused_by_name(
    request_: dict[str, Any], param: str
) -> None:
    assert refused(request_).param == param


def test_user_is_dropped_and_b64_json_is_what_comes_back() -> None:
    assert "user" not in invoke({"user": "u-1", "response_format": "b64_json"})


def test_image_models_are_known_by_id_profile_or_arn() -> None:
    assert image_family("us.amazon.nova-canvas-v1:0") == "nova"
    arn = "arn:aws:bedrock:us-west-2::foundation-model/stability.stable-image-core-v1:1"
    assert image_family(arn) == "stability"
    assert image_family(TITAN) == "titan"
    assert image_family("anthropic.claude-sonnet-4-5-20250929-v1:0") is None
    assert refused({}, "amazon.nova-pro-v1:0").param == "model"


def test_images_come_back_as_b64_json_counted_for_their_price() -> None:
    answer = ADAPTER.images_response(orjson.dumps({"images": ["aW1n", "aW1nMg=="]}), NOVA)
    assert answer["data"] == [{"b64_json": "aW1n"}, {"b64_json": "aW1nMg=="}]
    assert answer["usage"] == {"images": 2}
    stability = {"seeds": [7], "finish_reasons": [None], "images": ["c2Q="]}
    assert ADAPTER.images_response(orjson.dumps(stability), SD)["usage"] == {"images": 1}


def test_a_filtered_image_is_a_content_policy_error() -> None:
    for body in (
        {"finish_reasons": ["Filter reason: prompt"]},
        {"images": [], "error": "blocked by the content filter"},
    ):
        with pytest.raises(GatewayError) as info:
            ADAPTER.images_response(orjson.dumps(body), SD)
        assert (info.value.status, info.value.code) == (400, "content_policy_violation")
    with pytest.raises(GatewayError) as empty:
        ADAPTER.images_response(b'{"images": []}', NOVA)
    assert empty.value.status == 502
    with pytest.raises(ProviderResponseError):
        ADAPTER.images_response(b"<html>", NOVA)


def rerank(request: dict[str, Any], model: str = "cohere.rerank-v3-5:0") -> Any:
    full = {"model": "r", "query": "night ships", "documents": ["a", "b", "c"], **request}
    call = ADAPTER.rerank_call(full, model, "eu-west-1")
    assert call.path == "/rerank"
    return orjson.loads(call.body)


def test_rerank_maps_to_the_agent_runtimes_rerank() -> None:
    body = rerank({"top_n": 2, "max_tokens_per_doc": 512, "priority": 3})
    assert body["queries"] == [{"type": "TEXT", "textQuery": {"text": "night ships"}}]
    assert body["sources"][1] == {
        "type": "INLINE",
        "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "b"}},
    }
    assert body["rerankingConfiguration"] == {
        "type": "BEDROCK_RERANKING_MODEL",
        "bedrockRerankingConfiguration": {
            "numberOfResults": 2,
            "modelConfiguration": {
                "modelArn": "arn:aws:bedrock:eu-west-1::foundation-model/cohere.rerank-v3-5:0",
                "additionalModelRequestFields": {"max_tokens_per_doc": 512},
            },
        },
    }
    whole = rerank({"documents": ["a", {"title": "t", "text": "x"}]}, "amazon.rerank-v1:0")
    assert whole["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"] == 2
    assert whole["sources"][1]["inlineDocumentSource"] == {
        "type": "JSON",
        "jsonDocument": {"title": "t", "text": "x"},
    }


@pytest.mark.parametrize(
    ("request_", "model", "param"),
    [
        ({"max_tokens_per_doc": 100}, "amazon.rerank-v1:0", "max_tokens_per_doc"),
        ({"rank_fields": ["title"]}, "amazon.rerank-v1:0", "rank_fields"),
        ({"top_n": 0}, "amazon.rerank-v1:0", "top_n"),
        ({"documents": ["a", 3]}, "amazon.rerank-v1:0", "documents[1]"),
        ({"documents": ["d"] * 1001}, "amazon.rerank-v1:0", "documents"),
    ],
)
def test_rerank_refuses_what_bedrock_cannot_take(
    request_: dict[str, Any], model: str, param: str
) -> None:
    with pytest.raises(GatewayError) as info:
        rerank(request_, model)
    assert (info.value.status, info.value.param) == (400, param)


def test_model_arns_name_the_region_and_partition() -> None:
    assert model_arn("amazon.rerank-v1:0", "cn-north-1").startswith("arn:aws-cn:bedrock:cn-north-1")
    assert model_arn("m", "us-gov-west-1").startswith("arn:aws-us-gov:")
    assert model_arn("arn:aws:bedrock:x::foundation-model/m", "eu-west-1").endswith("/m")


def test_rerank_answers_in_cohere_shape_with_search_units() -> None:
    answer = {
        "results": [
            {
                "index": 2,
                "relevanceScore": 0.9,
                "document": {"type": "TEXT", "textDocument": {"text": "c!"}},
            },
            {"index": 0, "relevanceScore": 0.25},
        ]
    }
    request = {"query": "q", "documents": ["a"] * 150, "return_documents": True}
    result = ADAPTER.rerank_response(orjson.dumps(answer), request)
    assert result["results"] == [
        {"index": 2, "relevance_score": 0.9, "document": {"text": "c!"}},
        {"index": 0, "relevance_score": 0.25, "document": {"text": "a"}},
    ]
    assert result["meta"]["billed_units"] == {"search_units": 2}
    assert result["usage"] == {"search_units": 2}
    plain = ADAPTER.rerank_response(orjson.dumps(answer), {"query": "q", "documents": ["a"] * 3})
    assert all("document" not in r for r in plain["results"])
    assert plain["meta"]["billed_units"] == {"search_units": 1}
    # The client's answer leaves the gateway's usage out.
    assert "usage" not in orjson.loads(RERANK.render(plain, "r"))


def test_the_agent_runtime_host_is_derived_from_the_providers() -> None:
    region = "eu-west-1"
    assert (
        agent_runtime_url("https://bedrock-runtime.eu-west-1.amazonaws.com", region)
        == "https://bedrock-agent-runtime.eu-west-1.amazonaws.com"
    )
    assert (
        agent_runtime_url("https://bedrock-runtime-fips.us-east-1.amazonaws.com", "us-east-1")
        == "https://bedrock-agent-runtime-fips.us-east-1.amazonaws.com"
    )
    # A VPC endpoint's id is its own: the region's public agent runtime, unless configured.
    vpce = "https://vpce-0abc-1xyz.bedrock-runtime.eu-west-1.vpce.amazonaws.com"
    assert (
        agent_runtime_url(vpce, region) == "https://bedrock-agent-runtime.eu-west-1.amazonaws.com"
    )
    assert agent_runtime_url("http://127.0.0.1:9000", region) == "http://127.0.0.1:9000"


def test_a_bedrock_provider_reaches_rerank_on_its_agent_runtime() -> None:
    config = validate_config(
        {
            "providers": {
                "aws": {"type": "bedrock", "region": "eu-west-1", "api_key_env": "K"},
                "local": {
                    "type": "bedrock",
                    "region": "eu-west-1",
                    "base_url": "http://127.0.0.1:9",
                },
                "private": {
                    "type": "bedrock",
                    "region": "eu-west-1",
                    "base_url": "https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com",
                    "agent_runtime_base_url": (
                        "https://vpce-2.bedrock-agent-runtime.eu-west-1.vpce.amazonaws.com"
                    ),
                },
            },
            "models": {
                "r": {"deployments": [{"provider": "aws", "model": "amazon.rerank-v1:0"}]},
                "s": {"deployments": [{"provider": "local", "model": "amazon.rerank-v1:0"}]},
                "p": {"deployments": [{"provider": "private", "model": "amazon.rerank-v1:0"}]},
            },
        }
    )
    runtime = compile_config(config, {"K": "key"})
    provider = runtime.models["r"].deployments[0].provider
    twin = provider.agent_runtime
    assert twin is not None and provider.region == "eu-west-1"
    assert twin.host == b"bedrock-agent-runtime.eu-west-1.amazonaws.com"
    assert twin.headers == provider.headers and twin.name != provider.name
    translation = TRANSLATIONS["rerank"]
    assert translation.available(provider, RERANK)
    assert translation.target(provider) is twin
    assert TRANSLATIONS["images"].target(provider) is provider
    local = runtime.models["s"].deployments[0].provider
    assert local.agent_runtime is not None and local.agent_runtime.host == local.host
    private = runtime.models["p"].deployments[0].provider.agent_runtime
    assert private is not None
    assert private.host == b"vpce-2.bedrock-agent-runtime.eu-west-1.vpce.amazonaws.com"
    with pytest.raises(ConfigError, match="agent_runtime_base_url"):
        validate_config(
            {
                "providers": {
                    "o": {
                        "type": "openai",
                        "api_key_env": "K",
                        "agent_runtime_base_url": "https://x.example",
                    }
                }
            }
        )
