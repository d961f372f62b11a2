"""Bedrock's image and rerank models as the mock provider answers them.

- InvokeModel (`POST /model/{modelId}/invoke`) for image models: Amazon Nova Canvas and Titan
  Image Generator v2 (`taskType: TEXT_IMAGE`, answering `{"images"}`), and Stability's
  (`prompt`, `aspect_ratio`, answering `{"seeds", "finish_reasons", "images"}`). Each image is
  a PNG of the size asked (Stability's: the aspect ratio at about a megapixel, sides in steps
  of 64); sizes, counts and qualities each model cannot take are refused as Bedrock refuses
  them (400 ValidationException). The mock renders PNG only.
- The agent runtime's Rerank (`POST /rerank` whose body carries `rerankingConfiguration`:
  on one host, that is what tells it from the compatible servers' `/rerank`), for
  `amazon.rerank-v1:0` and `cohere.rerank-v3-5:0`, scored as mock_rerank scores, each result
  with its document.

Credentials (SigV4 or a Bearer key), faults and errors (`{"message"}` with
`x-amzn-ErrorType`) are mock_provider's, as for Converse.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import unquote

import orjson

from tollway.providers.bedrock_media import (
    MAX_DOCUMENTS,
    MAX_IMAGES,
    NOVA_MAX_PIXELS,
    NOVA_SIDES,
    STABILITY_RATIOS,
    TITAN_SIZES,
    image_family,
)
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.testing import mock_bedrock as bedrock_wire
from tollway.testing import mock_rerank
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_forms import Handler, MediaContext, send_body
from tollway.testing.mock_images import png

RERANKERS = frozenset({"amazon.rerank-v1:0", "cohere.rerank-v3-5:0"})
_INVOKE = re.compile(r"/model/([^/]+)/invoke")
_ARN = re.compile(r"arn:aws(?:-[a-z-]+)?:bedrock:[a-z0-9-]{1,20}::foundation-model/(.+)")
_AGENT_RERANK = b'"rerankingConfiguration"'


def route(request: Request) -> tuple[str, bool] | None:
    """(model, streamed) for a request this module answers, else None."""
    found = _INVOKE.fullmatch(request.path)
    if found is not None:
        return unquote(found.group(1)), False
    if request.path != "/rerank" or _AGENT_RERANK not in request.body:
        return None
    try:
        arn = orjson.loads(request.body)["rerankingConfiguration"]["bedrockRerankingConfiguration"][
            "modelConfiguration"
        ]["modelArn"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "", False  # refused as a malformed request once its body is read
    named = _ARN.fullmatch(arn) if isinstance(arn, str) else None
    return (named.group(1) if named else ""), False


def handler_for(path: str, ctx: MediaContext) -> Handler | None:
    if path == "/rerank":
        return functools.partial(rerank, ctx)
    if _INVOKE.fullmatch(path):
        return functools.partial(invoke, ctx)
    return None


def _invalid(conn: HttpConnection, message: str, status: int = 400) -> None:
    conn.send_json(status, bedrock_wire.error(status, message), bedrock_wire.error_headers(status))


@functools.lru_cache(maxsize=32)
def _image(width: int, height: int) -> str:
    return base64.b64encode(png(width, height)).decode()


def _int(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _amazon_problem(family: str, body: dict[str, Any]) -> str | tuple[int, int, int]:
    """What Nova or Titan refuses in the request, else (images, width, height)."""
    if body.get("taskType") != "TEXT_IMAGE":
        return "taskType: the mock serves TEXT_IMAGE only"
    text = (body.get("textToImageParams") or {}).get("text")
    longest = 1024 if family == "nova" else 512
    if not isinstance(text, str) or not 1 <= len(text) <= longest:
        return f"textToImageParams.text: must be 1 to {longest} characters"
    config = body.get("imageGenerationConfig") or {}
    count = _int(config.get("numberOfImages", 1), 1, MAX_IMAGES)
    if count is None:
        return f"imageGenerationConfig.numberOfImages: must be 1 to {MAX_IMAGES}"
    if config.get("quality", "standard") not in ("standard", "premium"):
        return "imageGenerationConfig.quality: must be standard or premium"
    width, height = config.get("width", 1024), config.get("height", 1024)
    low, high = NOVA_SIDES
    if _int(width, low, high) is None or _int(height, low, high) is None:
        return f"imageGenerationConfig: width and height must be {low} to {high}"
    if family == "titan":
        if (width, height) not in TITAN_SIZES:
            return f"imageGenerationConfig: {width}x{height} is not a supported size"
    elif (
        width % 16
        or height % 16
        or width * height > NOVA_MAX_PIXELS
        or max(width, height) > 4 * min(width, height)
    ):
        return f"imageGenerationConfig: {width}x{height} is not a supported size"
    return count, width, height


def _stability_size(ratio: str) -> tuple[int, int]:
    """An aspect ratio at about a megapixel, sides in steps of 64."""
    across, down = (int(part) for part in ratio.split(":"))
    scale = math.sqrt(1024 * 1024 / (across * down))
    return round(across * scale / 64) * 64, round(down * scale / 64) * 64


def invoke(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    body.pop("model", None)
    family = image_family(model)
    if family is None:
        _invalid(conn, f"The mock serves InvokeModel for image models only, not {model}.")
        return None
    if family == "stability":
        prompt = body.get("prompt")
        ratio = body.get("aspect_ratio", "1:1")
        if not isinstance(prompt, str) or not prompt.strip():
            _invalid(conn, "prompt: must be a non-empty string")
            return None
        if ratio not in STABILITY_RATIOS:
            _invalid(conn, f"aspect_ratio: must be one of {', '.join(STABILITY_RATIOS)}")
            return None
        if body.get("output_format", "png") != "png":
            _invalid(conn, "output_format: the mock renders png only")
            return None
        answer: dict[str, Any] = {
            "seeds": [ctx.next_id()],
            "finish_reasons": [None],
            "images": [_image(*_stability_size(ratio))],
        }
    else:
        checked = _amazon_problem(family, body)
        if isinstance(checked, str):
            _invalid(conn, checked)
            return None
        count, width, height = checked
        answer = {"images": [_image(width, height)] * count}
    return send_body(ctx.delivery, conn, orjson.dumps(answer), spec)


def _rerank_problem(body: dict[str, Any], model: str) -> str | None:
    queries = body.get("queries")
    if not isinstance(queries, list) or len(queries) != 1:
        return "queries: must hold exactly one query"
    query = queries[0] if isinstance(queries[0], dict) else {}
    text = (query.get("textQuery") or {}).get("text")
    if query.get("type") != "TEXT" or not isinstance(text, str) or not text:
        return "queries[0]: must be a TEXT query with textQuery.text"
    sources = body.get("sources")
    if not isinstance(sources, list) or not 1 <= len(sources) <= MAX_DOCUMENTS:
        return f"sources: must hold 1 to {MAX_DOCUMENTS} sources"
    for i, source in enumerate(sources):
        inline = source.get("inlineDocumentSource") if isinstance(source, dict) else None
        if source.get("type") != "INLINE" or not isinstance(inline, dict):
            return f"sources[{i}]: must be an INLINE source"
        kind = inline.get("type")
        if not (
            (kind == "TEXT" and isinstance((inline.get("textDocument") or {}).get("text"), str))
            or (kind == "JSON" and isinstance(inline.get("jsonDocument"), dict))
        ):
            return f"sources[{i}]: a TEXT document with its text, or a JSON document"
    settings = body.get("rerankingConfiguration") or {}
    bedrock = settings.get("bedrockRerankingConfiguration") or {}
    if settings.get("type") != "BEDROCK_RERANKING_MODEL":
        return "rerankingConfiguration.type: must be BEDROCK_RERANKING_MODEL"
    if _int(bedrock.get("numberOfResults"), 1, MAX_DOCUMENTS) is None:
        return f"numberOfResults: must be 1 to {MAX_DOCUMENTS}"
    if model not in RERANKERS:
        return f"modelArn: {model or 'the model'} is not a reranker model"
    extra = (bedrock.get("modelConfiguration") or {}).get("additionalModelRequestFields")
    if extra and (model.startswith("amazon.") or set(extra) - {"max_tokens_per_doc"}):
        return f"additionalModelRequestFields: {', '.join(extra)} not supported by {model}"
    return None


def rerank(
    ctx: MediaContext,
    conn: HttpConnection,
    request: Request,
    body: dict[str, Any],
    model: str,
    spec: FaultSpec,
) -> Awaitable[None] | None:
    body.pop("model", None)
    problem = _rerank_problem(body, model)
    if problem is not None:
        _invalid(conn, problem)
        return None
    documents = [s["inlineDocumentSource"] for s in body["sources"]]
    texts = [
        d["textDocument"]["text"]
        if d["type"] == "TEXT"
        else orjson.dumps(d["jsonDocument"]).decode()
        for d in documents
    ]
    query = body["queries"][0]["textQuery"]["text"]
    wanted = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"]
    results = [
        {"index": i, "relevanceScore": score, "document": documents[i]}
        for i, score in mock_rerank.scores(query, texts)[:wanted]
    ]
    return send_body(ctx.delivery, conn, orjson.dumps({"results": results}), spec)
