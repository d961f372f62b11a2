"""The mock provider's Bedrock image models (InvokeModel) and the agent runtime's Rerank, judged
by boto3: its requests signed as AWS signs them, its answers parsed as AWS's, its errors
raised as AWS's (x-amzn-ErrorType), and the mock's faults."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from media_mock_key import MEDIA_KEY
from servers import Process

REGION = "eu-west-1"
ARN = f"arn:aws:bedrock:{REGION}::foundation-model/"


def aws(mock: Process, service: str, secret: str = MEDIA_KEY) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=mock.url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def invoke(mock: Process, model: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = aws(mock, "bedrock-runtime").invoke_model(modelId=model, body=json.dumps(body))
    parsed: dict[str, Any] = json.loads(answer["body"].read())
    return parsed


def size(b64: str) -> tuple[int, int]:
    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def nova(config: dict[str, Any], text: str = "a kite") -> dict[str, Any]:
    return {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": text},
        "imageGenerationConfig": config,
    }


def rerank(mock: Process, model: str, **extra: Any) -> Any:
    return aws(mock, "bedrock-agent-runtime").rerank(
        queries=[{"type": "TEXT", "textQuery": {"text": "night ships"}}],
        sources=[
            {
                "type": "INLINE",
                "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}},
            }
            for t in ("bread", "ships at night", "night")
        ],
        rerankingConfiguration={
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": 2,
                "modelConfiguration": {"modelArn": ARN + model, **extra},
            },
        },
    )


def test_image_models_answer_pngs_of_the_size_asked(media_mock: Process) -> None:
    answer = invoke(
        media_mock,
        "amazon.nova-canvas-v1:0",
        nova({"numberOfImages": 2, "width": 512, "height": 768}),
    )
    assert [size(image) for image in answer["images"]] == [(512, 768)] * 2
    titan = invoke(media_mock, "amazon.titan-image-generator-v2:0", nova({}))
    assert [size(image) for image in titan["images"]] == [(1024, 1024)]
    stability = invoke(
        media_mock, "stability.stable-image-core-v1:1", {"prompt": "a", "aspect_ratio": "9:16"}
    )
    assert stability["finish_reasons"] == [None] and len(stability["seeds"]) == 1
    assert [size(image) for image in stability["images"]] == [(768, 1344)]


@pytest.mark.parametrize(
    ("model", "body", "problem"),
    [
        ("amazon.nova-canvas-v1:0", nova({"width": 1000, "height": 1000}), "1000x1000"),
        ("amazon.titan-image-generator-v2:0", nova({"width": 1280, "height": 720}), "1280x720"),
        ("amazon.nova-canvas-v1:0", nova({"numberOfImages": 6}), "numberOfImages"),
        ("amazon.nova-canvas-v1:0", nova({}, "x" * 1025), "text"),
        ("stability.sd3-5-large-v1:0", {"prompt": "a", "aspect_ratio": "7:4"}, "aspect_ratio"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", {"prompt": "a"}, "image models only"),
    ],
)
def test_what_a_model_cannot_take_is_a_validation_exception(
    media_mock: Process, model: str, body: dict[str, Any], problem: str
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        invoke(media_mock, model, body)
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException" and problem in error["Message"]


def test_the_agent_runtimes_rerank_scores_and_returns_documents(media_mock: Process) -> None:
    results = rerank(media_mock, "amazon.rerank-v1:0")["results"]
    assert [(r["index"], r["relevanceScore"]) for r in results] == [(1, 1.0), (2, 0.5)]
    assert results[0]["document"]["textDocument"]["text"] == "ships at night"
    cohere = rerank(
        media_mock,
        "cohere.rerank-v3-5:0",
        additionalModelRequestFields={"max_tokens_per_doc": 64},
    )
    assert len(cohere["results"]) == 2
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        rerank(media_mock, "amazon.rerank-v1:0", additionalModelRequestFields={"top_k": 1})
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_signatures_and_faults_as_for_converse(media_mock: Process) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as forged:
        aws(media_mock, "bedrock-agent-runtime", secret="wrong").rerank(
            queries=[{"type": "TEXT", "textQuery": {"text": "q"}}],
            sources=[
                {
                    "type": "INLINE",
                    "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "a"}},
                }
            ],
            rerankingConfiguration={
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "numberOfResults": 1,
                    "modelConfiguration": {"modelArn": ARN + "amazon.rerank-v1:0"},
                },
            },
        )
    assert forged.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as throttled:
        rerank(media_mock, "amazon.rerank-v1:0~status=429")
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    with pytest.raises(botocore.exceptions.ClientError) as down:
        invoke(media_mock, "amazon.nova-canvas-v1:0~status=503", nova({}))
    assert down.value.response["Error"]["Code"] == "ServiceUnavailableException"
