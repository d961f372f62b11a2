"""Bedrock's image and rerank models through a real gateway, against the mock provider, with the
official SDKs as clients (openai for images, cohere for rerank): the images' bytes at the size
asked, what the provider was asked (InvokeModel, the agent runtime's Rerank), signed requests
(SigV4 and Bedrock API keys), errors in each API's own shape, and each call recorded with the
catalog's price of its images or search units."""

from __future__ import annotations

import base64
import re
import signal
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import cohere
import httpx
import openai
import pytest

from call_records import stored_records
from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY, recording_gateway
from servers import Process

PNG = b"\x89PNG\r\n\x1a\n"
NOVA = "amazon.nova-canvas-v1:0"
REGION = "eu-west-1"
# A SigV4 Authorization header for Bedrock in the provider's region (the mock checks the
# signature itself, and answers 403 to a wrong one).
SIGNED = re.compile(
    rf"AWS4-HMAC-SHA256 Credential={UPSTREAM_KEY}/\d{{8}}/{REGION}/bedrock/aws4_request, "
    r"SignedHeaders=host;x-amz-date, Signature=[0-9a-f]{64}"
)
NO_RETRIES = {"retries": 0}


def config(mock: Process) -> dict[str, Any]:
    bedrock = {"type": "bedrock", "region": REGION, "base_url": mock.url}

    def model(provider: str, name: str, **routing: Any) -> dict[str, Any]:
        return {"deployments": [{"provider": provider, "model": name}], "routing": routing}

    return {
        "providers": {
            "signed": {
                **bedrock,
                "aws_access_key_id_env": "MOCK_KEY",
                "aws_secret_access_key_env": "MOCK_KEY",
            },
            "keyed": {**bedrock, "api_key_env": "MOCK_KEY"},
        },
        "models": {
            "nova": model("signed", NOVA),
            "titan": model("keyed", "amazon.titan-image-generator-v2:0"),
            "sd": model("signed", "stability.sd3-5-large-v1:0"),
            "nova-throttled": model("signed", NOVA + "~status=429", **NO_RETRIES),
            "amazon-rerank": model("signed", "amazon.rerank-v1:0"),
            "cohere-rerank": model("keyed", "cohere.rerank-v3-5:0"),
            "rerank-down": model("signed", "amazon.rerank-v1:0~status=503", **NO_RETRIES),
            "not-a-reranker": model("signed", "amazon.titan-embed-text-v2:0"),
        },
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }


@pytest.fixture(scope="module")
def served(workdir: Path, mock: Process) -> Iterator[tuple[Process, Path]]:
    yield from recording_gateway(workdir, config(mock), "bedrock-media")


@pytest.fixture(scope="module")
def client(served: tuple[Process, Path]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0].url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture(scope="module")
def co(served: tuple[Process, Path]) -> cohere.ClientV2:
    return cohere.ClientV2(base_url=served[0].url, api_key=CLIENT_KEY)


def rid(name: str) -> dict[str, str]:
    return {"x-request-id": name}


def seen(mock: Process) -> dict[str, Any]:
    """The last request the mock provider took."""
    last: dict[str, Any] = httpx.get(mock.url + "/_mock/requests").json()[-1]
    return last


def requests_taken(mock: Process) -> int:
    taken: int = httpx.get(mock.url + "/_mock/stats").json()["requests"]
    return taken


def png_size(b64: str | None) -> tuple[int, int]:
    assert b64 is not None
    data = base64.b64decode(b64)
    assert data.startswith(PNG)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_nova_canvas_makes_the_images_asked_in_a_signed_invoke(
    client: openai.OpenAI, mock: Process
) -> None:
    result = client.images.generate(
        model="nova",
        prompt="a lighthouse at dusk",
        n=2,
        size="512x768",  # type: ignore[arg-type]
        quality="hd",
        extra_headers=rid("bedrock-nova"),
    )
    assert [png_size(image.b64_json) for image in result.data] == [(512, 768)] * 2
    asked = seen(mock)
    assert asked["path"] == "/model/amazon.nova-canvas-v1%3A0/invoke"
    assert SIGNED.fullmatch(asked["headers"]["authorization"])
    assert asked["body"] == {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a lighthouse at dusk"},
        "imageGenerationConfig": {
            "numberOfImages": 2,
            "width": 512,
            "height": 768,
            "quality": "premium",
        },
    }


def test_titan_takes_a_bedrock_api_key(client: openai.OpenAI, mock: Process) -> None:
    result = client.images.generate(
        model="titan",
        prompt="a red kite",
        size="1173x640",  # type: ignore[arg-type]
        response_format="b64_json",
        extra_headers=rid("bedrock-titan"),
    )
    assert [png_size(image.b64_json) for image in result.data] == [(1173, 640)]
    asked = seen(mock)
    assert asked["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    config = asked["body"]["imageGenerationConfig"]
    assert (config["width"], config["height"]) == (1173, 640)


def test_stability_is_asked_the_sizes_aspect_ratio(client: openai.OpenAI, mock: Process) -> None:
    result = client.images.generate(
        model="sd",
        prompt="a harbour",
        size="1024x576",  # type: ignore[arg-type]
        extra_headers=rid("bedrock-sd"),
    )
    assert [png_size(image.b64_json) for image in result.data] == [(1344, 768)]
    assert seen(mock)["body"] == {
        "prompt": "a harbour",
        "output_format": "png",
        "aspect_ratio": "16:9",
    }


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        ("nova", {"size": "1000x1000"}, "size"),
        ("titan", {"size": "1024x768"}, "size"),
        ("sd", {"size": "1792x1024"}, "size"),
        ("sd", {"n": 2}, "n"),
        ("nova", {"n": 6}, "n"),
        ("nova", {"response_format": "url"}, "response_format"),
        ("nova", {"style": "vivid"}, "style"),
    ],
)
def test_what_a_model_cannot_make_is_a_400_naming_the_param_before_any_call(
    client: openai.OpenAI, mock: Process, model: str, extra: dict[str, Any], param: str
) -> None:
    before = requests_taken(mock)
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model=model, prompt="a kite", **extra)
    assert refused.value.body["param"] == param  # type: ignore[index]
    assert refused.value.body["message"]  # type: ignore[index]
    assert requests_taken(mock) == before


def test_image_errors_come_in_openais_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.images.generate(model="no-such-model", prompt="a kite")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.RateLimitError) as throttled:
        client.images.generate(model="nova-throttled", prompt="a kite")
    assert throttled.value.code == "rate_limit_exceeded"
    assert "ThrottlingException" in throttled.value.message
    with pytest.raises(openai.BadRequestError) as too_long:  # refused by the model itself
        client.images.generate(model="nova", prompt="x" * 1100)
    assert "textToImageParams.text" in too_long.value.message


def test_rerank_on_bedrock_through_the_cohere_sdk(co: cohere.ClientV2, mock: Process) -> None:
    documents = ["bread and an oven", "ships at night", "the night sky", "a lighthouse"]
    ranked = co.rerank(
        model="amazon-rerank",
        query="night ships",
        documents=documents,
        top_n=2,
        request_options={"additional_headers": rid("bedrock-rerank")},
    )
    assert [r.index for r in ranked.results] == [1, 2]
    assert ranked.results[0].relevance_score > ranked.results[1].relevance_score
    assert ranked.meta is not None and ranked.meta.billed_units is not None
    assert ranked.meta.billed_units.search_units == 1
    asked = seen(mock)
    assert asked["path"] == "/rerank"
    assert SIGNED.fullmatch(asked["headers"]["authorization"])
    bedrock = asked["body"]["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert bedrock == {
        "numberOfResults": 2,
        "modelConfiguration": {
            "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.rerank-v1:0"
        },
    }
    assert asked["body"]["queries"] == [{"type": "TEXT", "textQuery": {"text": "night ships"}}]
    many = co.rerank(
        model="cohere-rerank",
        query="lighthouse",
        documents=[f"document {i}" for i in range(149)] + ["a lighthouse"],
        max_tokens_per_doc=256,
        request_options={"additional_headers": rid("bedrock-rerank-150")},
    )
    assert many.results[0].index == 149 and len(many.results) == 150
    assert many.meta is not None and many.meta.billed_units is not None
    assert many.meta.billed_units.search_units == 2
    asked = seen(mock)
    assert asked["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    config = asked["body"]["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    fields = config["modelConfiguration"]["additionalModelRequestFields"]
    assert fields == {"max_tokens_per_doc": 256}


def test_rerank_returns_documents_when_asked(served: tuple[Process, Path]) -> None:
    v1 = cohere.Client(base_url=served[0].url, api_key=CLIENT_KEY)
    ranked = v1.rerank(
        model="amazon-rerank",
        query="night ships",
        documents=["bread", "ships at night"],
        return_documents=True,
    )
    assert ranked.results[0].document is not None
    assert ranked.results[0].document.text == "ships at night"


def test_rerank_errors_come_in_cohere_shape(co: cohere.ClientV2, mock: Process) -> None:
    before = requests_taken(mock)
    with pytest.raises(cohere.BadRequestError) as refused:
        co.rerank(model="amazon-rerank", query="q", documents=["a"], max_tokens_per_doc=100)
    assert "max_tokens_per_doc" in refused.value.body["message"]
    with pytest.raises(cohere.NotFoundError) as unknown:
        co.rerank(model="no-such-reranker", query="q", documents=["a"])
    assert "no-such-reranker" in unknown.value.body["message"]
    assert requests_taken(mock) == before
    with pytest.raises(cohere.ServiceUnavailableError) as down:
        co.rerank(model="rerank-down", query="q", documents=["a"])
    assert set(down.value.body) == {"message"}
    with pytest.raises(cohere.BadRequestError) as not_a_reranker:
        co.rerank(model="not-a-reranker", query="q", documents=["a"])
    assert "not a reranker" in not_a_reranker.value.body["message"]


def test_each_call_is_recorded_with_its_units_price(served: tuple[Process, Path]) -> None:
    """Last in the module: the records of the calls the tests above made, by request id."""
    gateway, data = served
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(60) == 0
    rows = stored_records(data)
    cost = {name: Decimal(row.cost) if row.cost is not None else None for name, row in rows.items()}
    assert cost["bedrock-nova"] == Decimal("0.08")  # two images at 0.04
    assert cost["bedrock-titan"] == Decimal("0.01")
    assert cost["bedrock-sd"] == Decimal("0.08")
    assert cost["bedrock-rerank"] == Decimal("0.001")  # one search unit
    assert cost["bedrock-rerank-150"] == Decimal("0.004")  # two, at Cohere's price
    nova = rows["bedrock-nova"]
    assert (nova.provider, nova.model_served, nova.outcome) == ("signed", NOVA, "completed")
    assert rows["bedrock-rerank"].api == "rerank"
