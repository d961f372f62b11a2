"""The mock provider's rerank endpoints: Cohere's v2 shape with the official `cohere` SDK, and
the OpenAI-compatible servers' shape (vLLM, Jina) with httpx."""

from __future__ import annotations

from typing import Any

import cohere
import httpx
import pytest
from cohere.core.request_options import RequestOptions

from tollway.testing import mock_rerank

from media_mock_key import MEDIA_KEY
from servers import Process

DOCS = [
    "Bananas are yellow.",
    "The gateway routes requests to a model.",
    "A gateway for requests.",
    "Routes of the gateway.",
]
NO_RETRY: RequestOptions = {"max_retries": 0}


def co(mock: Process) -> cohere.ClientV2:
    return cohere.ClientV2(base_url=mock.url, api_key=MEDIA_KEY, timeout=10)


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {MEDIA_KEY}"}


def test_cohere_rerank_orders_by_score_and_cuts_to_top_n(media_mock: Process) -> None:
    result = co(media_mock).rerank(
        model="rerank-v3.5", query="gateway routes requests", documents=DOCS, top_n=3
    )
    assert [r.index for r in result.results] == [1, 2, 3]
    scores = [r.relevance_score for r in result.results]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == 1.0
    assert result.meta is not None and result.meta.api_version is not None
    assert result.meta.api_version.version == "2"
    assert result.meta.billed_units is not None
    assert result.meta.billed_units.search_units == 1


def test_cohere_bills_a_search_unit_per_hundred_documents(media_mock: Process) -> None:
    result = co(media_mock).rerank(
        model="rerank-v3.5", query="doc", documents=[f"doc {i}" for i in range(250)]
    )
    assert len(result.results) == 250
    assert result.meta is not None and result.meta.billed_units is not None
    assert result.meta.billed_units.search_units == 3
    raw = httpx.post(
        media_mock.url + "/v2/rerank",
        headers=auth(),
        json={"model": "rerank-v3.5", "query": "doc", "documents": ["doc"]},
    ).json()
    assert set(raw) == {"id", "results", "meta"}
    assert raw["results"] == [{"index": 0, "relevance_score": 1.0}]


@pytest.mark.parametrize(
    "change",
    [{"query": ""}, {"documents": []}, {"documents": [{"text": "x"}]}, {"top_n": 0}],
)
def test_cohere_rerank_refuses_bad_requests_in_cohere_shape(
    media_mock: Process, change: dict[str, Any]
) -> None:
    body = {"model": "rerank-v3.5", "query": "q", "documents": ["d"], **change}
    response = httpx.post(media_mock.url + "/v2/rerank", headers=auth(), json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"id", "message"}
    assert response.json()["message"].startswith("invalid request")
    with pytest.raises(cohere.BadRequestError):
        co(media_mock).rerank(model="rerank-v3.5", query="", documents=["d"])


def test_cohere_rerank_faults(media_mock: Process) -> None:
    with pytest.raises(cohere.TooManyRequestsError):
        co(media_mock).rerank(
            model="rerank-v3.5~status=429", query="q", documents=["d"], request_options=NO_RETRY
        )
    with pytest.raises(cohere.UnauthorizedError):
        cohere.ClientV2(base_url=media_mock.url, api_key="wrong").rerank(
            model="rerank-v3.5", query="q", documents=["d"], request_options=NO_RETRY
        )


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank"])
def test_compatible_rerank_returns_documents_and_usage(media_mock: Process, path: str) -> None:
    body = {
        "model": "BAAI/bge-reranker-v2-m3",
        "query": "gateway routes",
        "documents": [DOCS[0], {"text": DOCS[3]}, DOCS[1]],
        "top_n": 2,
    }
    response = httpx.post(media_mock.url + path, headers=auth(), json=body)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"id", "model", "usage", "results"}
    assert answer["model"] == "BAAI/bge-reranker-v2-m3"
    assert answer["results"] == [
        {"index": 1, "relevance_score": 1.0, "document": {"text": DOCS[3]}},
        {"index": 2, "relevance_score": 1.0, "document": {"text": DOCS[1]}},
    ]
    assert answer["usage"]["total_tokens"] > 0
    bare = httpx.post(
        media_mock.url + path, headers=auth(), json={**body, "return_documents": False}
    ).json()
    assert all("document" not in r for r in bare["results"])


def test_compatible_rerank_refuses_bad_requests_and_takes_faults(media_mock: Process) -> None:
    url = media_mock.url + "/v1/rerank"
    response = httpx.post(url, headers=auth(), json={"model": "m", "query": "q", "documents": [1]})
    assert response.status_code == 400
    assert "documents[0]" in response.json()["error"]["message"]
    response = httpx.post(
        url, headers=auth(), json={"model": "m~status=503", "query": "q", "documents": ["d"]}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    with pytest.raises(httpx.TransportError):
        httpx.post(url, headers=auth(), json={"model": "m~reset", "query": "q", "documents": ["d"]})
    no_model = httpx.post(url, headers=auth(), json={"query": "q", "documents": ["d"]})
    assert no_model.json()["model"] == "mock-rerank"


def test_scores_are_word_overlap() -> None:
    assert mock_rerank.scores("Red apple", ["apple pie", "RED APPLE", "pear"]) == [
        (1, 1.0),
        (0, 0.5),
        (2, 0.0),
    ]
