"""The mock provider's images and moderations endpoints, driven with the official `openai` SDK
(and httpx for what the SDK will not send), plus what every new endpoint shares: credentials,
malformed input, faults, Azure paths and the request record."""

from __future__ import annotations

import base64
import struct
import time
import zlib
from typing import Any

import httpx
import openai
import pytest

from tollway.testing import mock_moderation

from media_mock_key import MEDIA_KEY
from servers import Process

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def client(mock: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url + "/v1", api_key=MEDIA_KEY, max_retries=0, timeout=10)


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {MEDIA_KEY}"}


def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG's signature and chunk CRCs; its width and height."""
    assert data[:8] == PNG_MAGIC
    at, kinds = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + payload) == crc
        kinds.append(kind)
        at += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def last_record(mock: Process) -> dict[str, Any]:
    records: list[dict[str, Any]] = httpx.get(mock.url + "/_mock/requests").json()
    return records[-1]


# -- images -----------------------------------------------------------------------------------


def test_gpt_image_generation_answers_base64_pngs_with_usage(media_mock: Process) -> None:
    result = client(media_mock).images.generate(
        model="gpt-image-1", prompt="a lighthouse at dusk", n=2, size="1024x1536", quality="low"
    )
    assert len(result.data or []) == 2
    for image in result.data or []:
        assert image.url is None
        assert png_size(base64.b64decode(image.b64_json or "")) == (4, 4)
    assert result.usage is not None
    assert result.usage.input_tokens_details.text_tokens == 5  # 20 characters
    assert result.usage.input_tokens_details.image_tokens == 0
    assert result.usage.output_tokens == 2 * 408  # low quality, 1.5 times the square's area
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens


def test_dall_e_answers_urls_the_mock_serves_and_a_revised_prompt(media_mock: Process) -> None:
    result = client(media_mock).images.generate(model="dall-e-3", prompt="a red fox")
    [image] = result.data or []
    assert image.revised_prompt == "A mock rendering of: a red fox"
    assert result.usage is None
    fetched = httpx.get(image.url or "")
    assert fetched.headers["content-type"] == "image/png"
    assert png_size(fetched.content) == (4, 4)
    b64 = client(media_mock).images.generate(
        model="dall-e-2", prompt="x", response_format="b64_json", n=3
    )
    assert [base64.b64decode(i.b64_json or "")[:8] for i in b64.data or []] == [PNG_MAGIC] * 3


def test_gpt_image_streams_partial_images_then_the_completed_one(media_mock: Process) -> None:
    stream = client(media_mock).images.generate(
        model="gpt-image-1", prompt="a boat", stream=True, partial_images=2
    )
    events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    completed = events[-1]
    assert completed.type == "image_generation.completed"
    assert completed.usage.output_tokens == 1056
    assert png_size(base64.b64decode(completed.b64_json)) == (4, 4)


def test_dall_e_refuses_to_stream(media_mock: Process) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(media_mock).images.generate(model="dall-e-3", prompt="a boat", stream=True)
    assert caught.value.param == "stream"


def test_edit_takes_several_images_and_records_files_without_their_bytes(
    media_mock: Process,
) -> None:
    result = client(media_mock).images.edit(
        model="gpt-image-1",
        image=[("a.png", b"a" * 100, "image/png"), ("b.png", b"b" * 7, "image/png")],
        mask=("mask.png", b"m" * 3, "image/png"),
        prompt="add a hat",
    )
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens == 2 * 85
    record = last_record(media_mock)
    assert record["path"] == "/v1/images/edits"
    assert record["model"] == "gpt-image-1"
    body = record["body"]
    assert body["prompt"] == "add a hat"
    assert body["image[]"] == [
        {"filename": "a.png", "content_type": "image/png", "size": 100},
        {"filename": "b.png", "content_type": "image/png", "size": 7},
    ]
    assert body["mask"] == {"filename": "mask.png", "content_type": "image/png", "size": 3}


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_variations_answer_as_generations(media_mock: Process) -> None:
    result = client(media_mock).images.create_variation(
        image=("a.png", b"x" * 10, "image/png"), n=2, response_format="b64_json", size="256x256"
    )
    assert len(result.data or []) == 2
    assert last_record(media_mock)["body"]["model"] == "dall-e-2"  # the default


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/images/edits", {"prompt": "p"}, "image"),
        ("/v1/images/edits", {"image": ("a.png", b"x", "image/png")}, "prompt"),
        ("/v1/images/variations", {"model": "dall-e-2"}, "image"),
        ("/v1/audio/transcriptions", {"model": "whisper-1"}, "file"),
        ("/v1/audio/translations", {"model": "whisper-1"}, "file"),
    ],
)
def test_a_form_missing_its_file_or_prompt_gets_a_400_naming_it(
    media_mock: Process, path: str, fields: dict[str, Any], param: str
) -> None:
    data = {k: v for k, v in fields.items() if isinstance(v, str)}
    uploads = {k: v for k, v in fields.items() if isinstance(v, tuple)}
    if not uploads:
        uploads = {"other": ("o.bin", b"o", "application/octet-stream")}
    response = httpx.post(media_mock.url + path, headers=auth(), data=data, files=uploads)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "dall-e-2"}, "prompt"),
        ({"model": "dall-e-2", "prompt": " "}, "prompt"),
        ({"model": "dall-e-2", "prompt": "p", "n": 11}, "n"),
        ({"model": "dall-e-3", "prompt": "p", "n": 2}, "n"),
        ({"model": "dall-e-2", "prompt": "p", "size": "big"}, "size"),
        ({"model": "dall-e-2", "prompt": "p", "response_format": "gif"}, "response_format"),
    ],
)
def test_malformed_generations_get_a_400(
    media_mock: Process, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(media_mock.url + "/v1/images/generations", headers=auth(), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_body_that_is_not_json_or_not_a_form_gets_a_400(media_mock: Process) -> None:
    for path in ("/v1/images/generations", "/v1/audio/speech", "/v1/moderations", "/rerank"):
        response = httpx.post(media_mock.url + path, headers=auth(), content=b"{nope")
        assert response.status_code == 400, path
        assert "error" in response.json()
    response = httpx.post(
        media_mock.url + "/v1/audio/transcriptions", headers=auth(), json={"model": "whisper-1"}
    )
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]
    broken = {**auth(), "content-type": "multipart/form-data; boundary=xyz"}
    response = httpx.post(media_mock.url + "/v1/images/edits", headers=broken, content=b"junk")
    assert response.status_code == 400


# -- what all the new endpoints share ------------------------------------------------------------

ENDPOINTS = [
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/images/variations",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/moderations",
    "/rerank",
    "/v1/rerank",
]


@pytest.mark.parametrize("path", [*ENDPOINTS, "/v2/rerank"])
def test_every_endpoint_wants_the_key(media_mock: Process, path: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}):
        response = httpx.post(media_mock.url + path, headers=headers, json={"model": "m"})
        assert response.status_code == 401
        body = response.json()
        if path == "/v2/rerank":
            assert set(body) == {"id", "message"}  # Cohere's shape
        else:
            assert body["error"]["code"] == "invalid_api_key"


def test_faults_apply_through_the_header_and_the_model_suffix(media_mock: Process) -> None:
    api = client(media_mock)
    with pytest.raises(openai.RateLimitError) as caught:
        api.images.generate(
            model="gpt-image-1", prompt="x", extra_headers={"x-mock-fault": "status=429"}
        )
    assert caught.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        api.audio.transcriptions.create(
            model="whisper-1~status=503", file=("a.mp3", b"0" * 100, "audio/mpeg")
        )
    assert last_record(media_mock)["model"] == "whisper-1~status=503"
    with pytest.raises(openai.InternalServerError):
        api.moderations.create(model="omni-moderation-latest~error_rate=1", input="hi")
    with pytest.raises(openai.APIConnectionError):
        api.images.edit(
            model="gpt-image-1~reset",
            image=("a.png", b"x", "image/png"),
            prompt="p",
        )
    response = httpx.post(
        media_mock.url + "/v1/moderations",
        headers={**auth(), "x-mock-fault": "nonsense=1"},
        json={"input": "x"},
    )
    assert response.status_code == 400
    assert "nonsense" in response.json()["error"]["message"]


def test_latency_and_a_cut_body(media_mock: Process) -> None:
    start = time.monotonic()
    client(media_mock).moderations.create(model="omni-moderation-latest~latency_ms=300", input="x")
    assert time.monotonic() - start >= 0.3
    with pytest.raises(openai.APIConnectionError):
        client(media_mock).images.generate(model="dall-e-2~cut_after=0", prompt="x")


def test_azure_paths_take_the_model_from_the_deployment(media_mock: Process) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=media_mock.url,
        api_key=MEDIA_KEY,
        api_version="2025-04-01-preview",
        max_retries=0,
        timeout=10,
    )
    result = azure.images.generate(model="gpt-image-1", prompt="a kite")
    assert result.usage is not None
    text = azure.audio.transcriptions.create(
        model="my-whisper", file=("a.mp3", b"0" * 32_000, "audio/mpeg"), response_format="text"
    )
    assert text == "mock transcript of 2.0 seconds of audio\n"
    record = last_record(media_mock)
    assert record["path"] == "/openai/deployments/my-whisper/audio/transcriptions"
    assert record["model"] == "my-whisper"
    with pytest.raises(openai.InternalServerError):
        azure.images.edit(model="gpt-image-1~status=500", image=("a.png", b"x"), prompt="p")


# -- moderations -----------------------------------------------------------------------------------


def test_moderation_flags_the_marker_word_and_scores_every_category(media_mock: Process) -> None:
    result = client(media_mock).moderations.create(input=["I will KILL the process", "skills"])
    assert result.model == "omni-moderation-latest"
    assert result.id.startswith("modr-")
    first, second = result.results
    assert first.flagged and first.categories.violence
    assert first.category_scores.violence >= 0.9
    assert not first.categories.hate
    assert not second.flagged  # "skills" holds "kill", but not at a word's start
    raw = httpx.post(
        media_mock.url + "/v1/moderations", headers=auth(), json={"input": "gore"}
    ).json()
    [scored] = raw["results"]
    assert set(scored["categories"]) == set(mock_moderation.CATEGORIES)
    assert set(scored["category_scores"]) == set(mock_moderation.CATEGORIES)
    assert scored["categories"]["violence/graphic"] is True
    assert max(v for k, v in scored["category_scores"].items() if k != "violence/graphic") < 0.01


def test_moderation_takes_multimodal_parts_as_one_input(media_mock: Process) -> None:
    result = client(media_mock).moderations.create(
        model="omni-moderation-2024-09-26",
        input=[
            {"type": "text", "text": "how to shoplift"},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
        ],
    )
    [only] = result.results
    assert result.model == "omni-moderation-2024-09-26"
    assert only.flagged and only.categories.illicit
    assert only.category_applied_input_types.violence == ["text", "image"]
    assert only.category_applied_input_types.hate == ["text"]
    again = client(media_mock).moderations.create(input="a calm sentence")
    assert (
        again.results[0].category_scores
        == client(media_mock).moderations.create(input="a calm sentence").results[0].category_scores
    )


@pytest.mark.parametrize("value", [None, 5, [], [{"type": "video"}]])
def test_moderation_refuses_bad_input(media_mock: Process, value: Any) -> None:
    body = {} if value is None else {"input": value}
    response = httpx.post(media_mock.url + "/v1/moderations", headers=auth(), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
