"""OpenAI's `POST /moderations` as the mock provider answers it.

An input is flagged, deterministically, when it holds a marker word (at the start of a word,
any case): "kill" (violence), "gore" (violence/graphic), "harass" (harassment), "slur" (hate),
"suicide" (self-harm), "nsfw" (sexual), "shoplift" (illicit). A flagged category scores 0.9 or
more; the others score below 0.001, the same for the same text.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# Categories scored on images as well as text (omni-moderation).
IMAGE_CATEGORIES = frozenset(
    {
        "self-harm",
        "self-harm/instructions",
        "self-harm/intent",
        "sexual",
        "violence",
        "violence/graphic",
    }
)
MARKERS = {
    "kill": "violence",
    "gore": "violence/graphic",
    "harass": "harassment",
    "slur": "hate",
    "suicide": "self-harm",
    "nsfw": "sexual",
    "shoplift": "illicit",
}
DEFAULT_MODEL = "omni-moderation-latest"


def _inputs(raw: Any) -> list[tuple[str, bool]] | str:
    """(text, has_image) per input, or what is wrong with `input`."""
    if isinstance(raw, str):
        return [(raw, False)]
    if not isinstance(raw, list) or not raw:
        return "Invalid 'input': expected a string, an array of strings, or an array of parts."
    if all(isinstance(item, str) for item in raw):
        return [(item, False) for item in raw]
    texts, image = [], False
    for i, part in enumerate(raw):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance((part.get("image_url") or {}).get("url"), str):
            image = True
        else:
            return f"Invalid 'input[{i}]': expected a text or image_url part."
    return [(" ".join(texts), image)]


def _result(text: str, image: bool) -> dict[str, Any]:
    hits = {
        category
        for marker, category in MARKERS.items()
        if re.search(r"\b" + marker, text, re.IGNORECASE)
    }
    seed = zlib.crc32(text.encode())
    scores = {}
    for i, category in enumerate(CATEGORIES):
        noise = ((seed >> (i % 24)) & 0xFF) / 256_000
        scores[category] = round((0.9 + noise * 10) if category in hits else noise, 6)
    applied = {
        c: ["text", "image"] if image and c in IMAGE_CATEGORIES else ["text"] for c in CATEGORIES
    }
    return {
        "flagged": bool(hits),
        "categories": {c: c in hits for c in CATEGORIES},
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def moderate(mid: str, model: str, body: dict[str, Any]) -> dict[str, Any] | str:
    """The answer, or what is wrong with the request."""
    if "input" not in body:
        return "Missing required parameter: 'input'."
    inputs = _inputs(body["input"])
    if isinstance(inputs, str):
        return inputs
    return {"id": mid, "model": model, "results": [_result(t, image) for t, image in inputs]}
