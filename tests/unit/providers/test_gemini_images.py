"""OpenAI's image generation through a Gemini image model: the request the adapter builds, and
the images and usage read back."""

from __future__ import annotations

import orjson
import pytest

from tollway.errors import GatewayError
from tollway.providers.gemini import GeminiAdapter

ADAPTER = GeminiAdapter()


def test_the_request_asks_for_n_images() -> None:
    call = ADAPTER.images_call({"prompt": "a kite", "n": 3}, "gemini-2.5-flash-image")
    assert call.path == "/models/gemini-2.5-flash-image:generateContent"
    body = orjson.loads(call.body)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a kite"}]}]
    assert body["generationConfig"] == {"responseModalities": ["IMAGE"], "candidateCount": 3}
    for asked in ({"prompt": "x", "n": 9}, {"prompt": "x", "stream": True}):
        with pytest.raises(GatewayError) as refused:
            ADAPTER.images_call(asked, "m")
        assert refused.value.status == 400


def test_the_answer_gives_each_image_and_the_tokens() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "here"},
                        {"inlineData": {"mimeType": "image/png", "data": "QUJD"}},
                    ]
                }
            },
            {"content": {"parts": [{"inlineData": {"mimeType": "image/jpeg", "data": "REVG"}}]}},
        ],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2580},
    }
    result = ADAPTER.images_response(orjson.dumps(answer), "m")
    assert [d["b64_json"] for d in result["data"]] == ["QUJD", "REVG"]
    assert result["usage"]["images"] == 2
    assert (result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]) == (7, 2580)
    no_image = {"candidates": [{"content": {"parts": [{"text": "I cannot draw that."}]}}]}
    with pytest.raises(GatewayError) as refused:
        ADAPTER.images_response(orjson.dumps(no_image), "m")
    assert refused.value.status == 502
