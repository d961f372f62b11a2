"""Rerank, as the mock provider answers it, in two wire shapes: Cohere's v2 (`POST /v2/rerank`)
and the OpenAI-compatible servers' (vLLM, Jina: `POST /rerank` or `/v1/rerank`).

A document's relevance is the share of the query's distinct words (lower-cased, `\\w+`) that
it holds, between 0 and 1; results are sorted by score, highest first (ties by index), and cut
to `top_n`. Cohere bills a search unit per 100 documents.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tollway.testing import mock_openai as wire

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def scores(query: str, documents: list[str]) -> list[tuple[int, float]]:
    """(index, relevance score) for each document, best first."""
    wanted = _words(query)
    scored = [
        (i, round(len(wanted & _words(doc)) / len(wanted), 6) if wanted else 0.0)
        for i, doc in enumerate(documents)
    ]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))


def _top_n(body: dict[str, Any], count: int) -> int | str:
    top_n = body.get("top_n")
    if top_n is None:
        return count
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        return "top_n must be a positive integer"
    return min(top_n, count)


def _query(body: dict[str, Any]) -> str | None:
    query = body.get("query")
    return query if isinstance(query, str) and query.strip() else None


def cohere(mid: str, body: dict[str, Any]) -> dict[str, Any] | str:
    """Cohere v2's answer, or what is wrong with the request (Cohere's wording)."""
    query = _query(body)
    if query is None:
        return "invalid request: query must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        return "invalid request: documents must be a non-empty list"
    if not all(isinstance(d, str) for d in documents):
        return "invalid request: documents must be a list of strings"
    if len(documents) > 10_000:
        return "invalid request: too many documents (at most 10000)"
    top_n = _top_n(body, len(documents))
    if isinstance(top_n, str):
        return f"invalid request: {top_n}"
    limit = body.get("max_tokens_per_doc")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        return "invalid request: max_tokens_per_doc must be a positive integer"
    results = [{"index": i, "relevance_score": s} for i, s in scores(query, documents)[:top_n]]
    return {
        "id": mid,
        "results": results,
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"search_units": math.ceil(len(documents) / 100)},
        },
    }


def compatible(mid: str, model: str, body: dict[str, Any]) -> dict[str, Any] | str:
    """The vLLM / Jina answer, or what is wrong with the request."""
    query = _query(body)
    if query is None:
        return "'query' must be a non-empty string"
    raw = body.get("documents")
    if not isinstance(raw, list) or not raw:
        return "'documents' must be a non-empty array"
    documents = []
    for i, doc in enumerate(raw):
        if isinstance(doc, dict) and isinstance(doc.get("text"), str):
            doc = doc["text"]
        if not isinstance(doc, str):
            return f"'documents[{i}]' must be a string or an object with 'text'"
        documents.append(doc)
    top_n = _top_n(body, len(documents))
    if isinstance(top_n, str):
        return f"'top_n': {top_n}"
    keep = body.get("return_documents", True) is not False
    results = []
    for i, score in scores(query, documents)[:top_n]:
        result: dict[str, Any] = {"index": i, "relevance_score": score}
        if keep:
            result["document"] = {"text": documents[i]}
        results.append(result)
    query_tokens = wire.count_tokens(query)
    tokens = sum(query_tokens + wire.count_tokens(d) for d in documents)
    return {"id": mid, "model": model, "usage": {"total_tokens": tokens}, "results": results}
