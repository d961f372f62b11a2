"""Bedrock's image and rerank models <-> OpenAI's image generation and Cohere's rerank.

Images go to InvokeModel (`POST /model/{modelId}/invoke`) on the provider's own host; rerank
goes to the agent runtime's Rerank (`POST /rerank` on bedrock-agent-runtime.{region}), the only
direct way AWS documents for both of its reranker models (`agent_runtime_url` derives that
host from the provider's base URL). Both are signed as the provider's chat calls are (SigV4,
service `bedrock`, or a Bedrock API key as a Bearer token).

Images (Amazon Nova Canvas, Titan Image Generator v2, and Stability's models):
- Nova and Titan take `{"taskType": "TEXT_IMAGE", "textToImageParams": {"text"},
  "imageGenerationConfig": {"numberOfImages", "width", "height", "quality"}}` and answer
  `{"images": [base64 PNG], "error"}`; Stability's take `{"prompt", "aspect_ratio",
  "output_format"}`, one image a call, and answer `{"images", "seeds", "finish_reasons"}`.
- `prompt` -> `text` / `prompt`. `n` -> `numberOfImages` (1 to 5); Stability makes one image a
  call, so its `n` must be 1.
- `size` "WxH" -> `width`/`height`: Nova takes sides of 320 to 4096 pixels in steps of 16, at
  most 4,194,304 pixels, no side over 4 times the other; Titan takes only its listed sizes.
  Stability takes an aspect ratio, not a size: the size's ratio, reduced, must be one it takes
  (1:1, 16:9, ...), and the image comes at the model's own resolution for that ratio. `auto` or
  no size: the model's default (1024x1024, 1:1). Any other size is a 400 naming `size`.
- `quality` -> Nova and Titan's `standard` (standard, low, medium) or `premium` (hd, high);
  `auto` leaves the model's default. Stability has one quality: only auto and standard pass.
- `response_format`: the images come back as `b64_json` (Bedrock returns image bytes, never a
  link); `url` is a 400. `output_format` -> Stability's `output_format` (png, jpeg, webp);
  Nova and Titan make PNG only.
- dropped: `user` (bookkeeping only). refused: `stream`, `style` (OpenAI's vivid/natural have
  no Bedrock equivalent), and the unknown.
- An image withheld by the model's content filter (Nova and Titan's `error`, Stability's
  `finish_reasons`) is a 400 `content_policy_violation`. Usage counts the images, which the
  catalog prices per image.

Rerank (`amazon.rerank-v1:0`, `cohere.rerank-v3-5:0`):
- `query` -> `queries[0].textQuery.text`; `documents` (up to 1,000) -> inline sources, a
  string as a TEXT document, an object as a JSON one; `top_n` -> `numberOfResults` (all the
  documents when not given); the model by its foundation-model ARN in the provider's region.
- `max_tokens_per_doc` -> the Cohere model's `additionalModelRequestFields`; `return_documents`
  (Cohere's v1 and the compatible servers' field) puts each result's document text in the
  answer. dropped: `priority` (Cohere's scheduling hint). refused: the unknown.
- Answered in Cohere's v2 shape: `results` (index, relevance_score), with
  `meta.billed_units.search_units` counted as Bedrock bills a query: one per 100 documents.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from tollway.errors import GatewayError
from tollway.providers.base import ParameterRules, UpstreamCall, reads_upstream

IMAGE_RULES = ParameterRules(
    "Bedrock image",
    frozenset({"model", "prompt", "n", "size", "quality", "response_format", "output_format"}),
    frozenset({"user"}),
    single_choice=False,
)
RERANK_RULES = ParameterRules(
    "Bedrock rerank",
    frozenset({"model", "query", "documents", "top_n", "return_documents", "max_tokens_per_doc"}),
    frozenset({"priority"}),
    single_choice=False,
)
# Nova Canvas's bounds on a generated image.
NOVA_SIDES = (320, 4096)
NOVA_MAX_PIXELS = 4_194_304
# The sizes Titan Image Generator v2 makes.
TITAN_SIZES = frozenset(
    {
        (1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768),
        (576, 384), (768, 1280), (384, 640), (1280, 768), (640, 384), (896, 1152),
        (448, 576), (1152, 896), (576, 448), (768, 1408), (384, 704), (1408, 768),
        (704, 384), (640, 1408), (320, 704), (1408, 640), (704, 320), (1152, 640),
        (1173, 640),
    }
)  # fmt: skip
STABILITY_RATIOS = ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
MAX_IMAGES = 5
MAX_DOCUMENTS = 1000
DOCUMENTS_PER_SEARCH_UNIT = 100
_QUALITY = {"standard": "standard", "low": "standard", "medium": "standard"}
_QUALITY |= {"hd": "premium", "high": "premium"}
_SIZE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
# Cross-region inference profiles name the model after a geography: "us.amazon.nova-...".
_PROFILE = re.compile(r"^(?:us|eu|apac|us-gov|ca|jp|au|global)\.")


def image_family(model: str) -> str | None:
    """ "nova", "titan" or "stability" for a Bedrock image model id, profile or ARN."""
    name = _PROFILE.sub("", model.rsplit("/", 1)[-1])
    if name.startswith("amazon.nova-canvas"):
        return "nova"
    if name.startswith("amazon.titan-image-generator"):
        return "titan"
    if name.startswith("stability."):
        return "stability"
    return None


def agent_runtime_url(base_url: str, region: str) -> str:
    """Where a Bedrock provider's rerank goes, unless its `agent_runtime_base_url` says: the
    bedrock-runtime host's agent-runtime twin (FIPS hosts included); for a VPC endpoint of
    bedrock-runtime, whose agent-runtime endpoint has an id of its own that cannot be derived,
    the region's public agent runtime; any other base URL (a proxy, a mock) serves both APIs
    itself, so it is kept."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if host.startswith(("bedrock-runtime.", "bedrock-runtime-fips.")):
        netloc = parts.netloc.replace("bedrock-runtime", "bedrock-agent-runtime", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    if ".bedrock-runtime." in host and host.endswith(".vpce.amazonaws.com"):
        return f"https://bedrock-agent-runtime.{region}.amazonaws.com"
    return base_url


def model_arn(model: str, region: str) -> str:
    """The foundation-model ARN the Rerank API names a model by (an ARN is kept as given)."""
    if model.startswith("arn:"):
        return model
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    if region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model}"


def _refuse(param: str, message: str, code: str = "invalid_value") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def _size(value: Any) -> tuple[int, int] | None:
    if value is None or value == "auto":
        return None
    found = _SIZE.match(value) if isinstance(value, str) else None
    if found is None:
        raise _refuse("size", f"'size' must be WIDTHxHEIGHT in pixels (or auto), not {value!r}.")
    return int(found.group(1)), int(found.group(2))


def _nova_size(width: int, height: int, model: str) -> None:
    low, high = NOVA_SIDES
    fits = (
        low <= width <= high
        and low <= height <= high
        and width % 16 == 0
        and height % 16 == 0
        and width * height <= NOVA_MAX_PIXELS
        and max(width, height) <= 4 * min(width, height)
    )
    if not fits:
        raise _refuse(
            "size",
            f"{width}x{height} is not a size `{model}` makes: each side {low} to {high} pixels "
            f"in steps of 16, at most {NOVA_MAX_PIXELS} pixels, neither side over 4 times the "
            "other.",
        )


def _aspect_ratio(width: int, height: int, model: str) -> str:
    common = math.gcd(width, height)
    ratio = f"{width // common}:{height // common}"
    if ratio not in STABILITY_RATIOS:
        raise _refuse(
            "size",
            f"`{model}` takes an aspect ratio, and {width}x{height} ({ratio}) is none of "
            f"{', '.join(STABILITY_RATIOS)}.",
        )
    return ratio


def _count(request: dict[str, Any], model: str, most: int) -> int:
    n = request.get("n")
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= most:
        raise _refuse("n", f"'n' must be from 1 to {most} for `{model}`.")
    return n


class BedrockMediaAdapter:
    """OpenAI's image generation and Cohere's rerank on Bedrock's models."""

    def images_call(self, request: dict[str, Any], model: str) -> UpstreamCall:
        if request.get("stream"):
            raise IMAGE_RULES.refuse("stream", "cannot be true (Bedrock does not stream images)")
        IMAGE_RULES.check(request)
        family = image_family(model)
        if family is None:
            raise _refuse(
                "model",
                f"`{model}` is not a Bedrock image model the gateway can call "
                "(Amazon Nova Canvas, Titan Image Generator v2, Stability models).",
                "unsupported_model",
            )
        fmt = request.get("response_format")
        if fmt not in (None, "b64_json"):
            raise _refuse(
                "response_format",
                f"Bedrock image models answer with the image itself: 'response_format' must be "
                f"b64_json, not {fmt!r}.",
                "unsupported_parameter",
            )
        size = _size(request.get("size"))
        quality = request.get("quality")
        output = request.get("output_format")
        body: dict[str, Any]
        if family == "stability":
            _count(request, model, 1)
            if quality not in (None, "auto", "standard"):
                raise _refuse("quality", f"`{model}` has one quality: 'quality' must be standard.")
            if output not in (None, "png", "jpeg", "webp"):
                raise _refuse("output_format", "'output_format' must be png, jpeg or webp.")
            body = {"prompt": request["prompt"], "output_format": output or "png"}
            if size is not None:
                body["aspect_ratio"] = _aspect_ratio(*size, model)
        else:
            if output not in (None, "png"):
                raise _refuse("output_format", f"`{model}` makes PNG images only.")
            config: dict[str, Any] = {"numberOfImages": _count(request, model, MAX_IMAGES)}
            if size is not None:
                if family == "nova":
                    _nova_size(*size, model)
                elif size not in TITAN_SIZES:
                    listed = ", ".join(f"{w}x{h}" for w, h in sorted(TITAN_SIZES))
                    raise _refuse(
                        "size", f"{size[0]}x{size[1]} is not a size `{model}` makes: {listed}."
                    )
                config["width"], config["height"] = size
            if quality not in (None, "auto"):
                if quality not in _QUALITY:
                    raise _refuse(
                        "quality", f"'quality' {quality!r} is not a quality of `{model}`."
                    )
                config["quality"] = _QUALITY[quality]
            body = {
                "taskType": "TEXT_IMAGE",
                "textToImageParams": {"text": request["prompt"]},
                "imageGenerationConfig": config,
            }
        return UpstreamCall(f"/model/{quote(model, safe='')}/invoke", orjson.dumps(body))

    @reads_upstream
    def images_response(self, body: bytes, model: str) -> dict[str, Any]:
        """The images in OpenAI's shape (`b64_json`), with the images made as the usage."""
        answer = orjson.loads(body)
        images = [image for image in answer.get("images") or [] if image]
        withheld = [reason for reason in answer.get("finish_reasons") or [] if reason]
        if answer.get("error") and not images:
            withheld.append(answer["error"])
        if withheld and not images:
            raise GatewayError(
                400,
                f"`{model}` withheld the image: {'; '.join(map(str, withheld))}.",
                code="content_policy_violation",
            )
        if not images:
            raise GatewayError(
                502,
                f"The model `{model}` answered without an image.",
                code="upstream_no_image",
                type="upstream_error",
            )
        return {
            "created": int(time.time()),
            "data": [{"b64_json": image} for image in images],
            "usage": {"images": len(images)},
        }

    def rerank_call(self, request: dict[str, Any], model: str, region: str) -> UpstreamCall:
        RERANK_RULES.check(request)
        documents = request["documents"]
        if len(documents) > MAX_DOCUMENTS:
            raise _refuse("documents", f"Bedrock reranks at most {MAX_DOCUMENTS} documents.")
        sources = []
        for i, document in enumerate(documents):
            if isinstance(document, str):
                inline: dict[str, Any] = {"type": "TEXT", "textDocument": {"text": document}}
            elif isinstance(document, dict):
                inline = {"type": "JSON", "jsonDocument": document}
            else:
                raise _refuse(f"documents[{i}]", f"documents[{i}] must be a string or an object.")
            sources.append({"type": "INLINE", "inlineDocumentSource": inline})
        top_n = request.get("top_n")
        if top_n is not None and (
            isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1
        ):
            raise _refuse("top_n", "'top_n' must be a positive integer.")
        configuration: dict[str, Any] = {"modelArn": model_arn(model, region)}
        limit = request.get("max_tokens_per_doc")
        if limit is not None:
            if not model.rsplit("/", 1)[-1].startswith("cohere."):
                raise RERANK_RULES.refuse("max_tokens_per_doc", f"is not taken by `{model}`")
            configuration["additionalModelRequestFields"] = {"max_tokens_per_doc": limit}
        body = {
            "queries": [{"type": "TEXT", "textQuery": {"text": request["query"]}}],
            "sources": sources,
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "numberOfResults": min(top_n or len(documents), len(documents)),
                    "modelConfiguration": configuration,
                },
            },
        }
        return UpstreamCall("/rerank", orjson.dumps(body))

    @reads_upstream
    def rerank_response(self, body: bytes, request: dict[str, Any]) -> dict[str, Any]:
        """Cohere's v2 answer, with search units as Bedrock bills them; `usage` carries them
        for the call's cost (the client's answer leaves it out)."""
        answer = orjson.loads(body)
        documents = request["documents"]
        keep = request.get("return_documents") is True
        results = []
        for found in answer["results"]:
            index = int(found["index"])
            result: dict[str, Any] = {
                "index": index,
                "relevance_score": float(found["relevanceScore"]),
            }
            if keep:
                result["document"] = _document(found.get("document"), documents[index])
            results.append(result)
        units = math.ceil(len(documents) / DOCUMENTS_PER_SEARCH_UNIT)
        return {
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": units}},
            "usage": {"search_units": units},
        }


def _document(returned: Any, sent: Any) -> dict[str, Any]:
    """A result's document as Cohere gives it back: `{"text"}` for a text one, the object
    itself for a JSON one; Bedrock's own copy when it sends one, else the one sent."""
    if isinstance(returned, dict):
        if isinstance(returned.get("textDocument"), dict):
            return {"text": returned["textDocument"].get("text", "")}
        if isinstance(returned.get("jsonDocument"), dict):
            return dict(returned["jsonDocument"])
    return {"text": sent} if isinstance(sent, str) else dict(sent)
