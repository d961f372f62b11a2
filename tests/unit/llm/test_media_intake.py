"""What the gateway reads of media calls (the model, from JSON or a form) and the usage it
takes from their answers, in the units the catalog prices."""

from __future__ import annotations

import struct
import tracemalloc

import httpx
import orjson
import pytest

from tollway.errors import GatewayError
from tollway.llm.media_apis import (
    OPENAI_IMAGE_EDITS,
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    OPENAI_SPEECH,
    OPENAI_TRANSCRIPTIONS,
    RERANK,
    wav_seconds,
)


def wav(seconds: float, rate: int = 8000) -> bytes:
    data = b"\x00\x00" * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def form(data: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://127.0.0.1/", data=data, files=files)
    return request.read(), request.headers["content-type"].encode()


def test_json_media_calls_default_their_model_as_openai_does() -> None:
    assert OPENAI_IMAGES.intake(b'{"prompt":"a kite"}').model == "dall-e-2"
    assert OPENAI_MODERATIONS.intake(b'{"input":"hi"}').model == "omni-moderation-latest"
    speech = OPENAI_SPEECH.intake(b'{"model":"tts-1","input":"hi","voice":"alloy"}')
    assert (speech.model, speech.stream) == ("tts-1", True)  # relayed as it comes
    assert RERANK.intake(b'{"model":"r","query":"q","documents":["a"]}').model == "r"


@pytest.mark.parametrize(
    ("api", "body", "param"),
    [
        (OPENAI_IMAGES, b'{"model":"dall-e-3"}', "prompt"),
        (OPENAI_SPEECH, b'{"model":"tts-1","input":"hi"}', "voice"),
        (OPENAI_SPEECH, b'{"model":"tts-1","voice":"alloy","input":""}', "input"),
        (OPENAI_MODERATIONS, b'{"input":[]}', "input"),
        (RERANK, b'{"model":"r","query":"q","documents":[]}', "documents"),
        (RERANK, b'{"query":"q","documents":["a"]}', "model"),
    ],
)
def test_json_media_calls_name_what_is_missing(api: object, body: bytes, param: str) -> None:
    with pytest.raises(GatewayError) as refused:
        api.intake(body)  # type: ignore[attr-defined]
    assert refused.value.status == 400 and refused.value.param == param


def test_a_form_call_reads_its_model_and_needs_its_files() -> None:
    body, content_type = form(
        {"model": "gpt-image-1", "prompt": "p"}, {"image": ("a.png", b"x", "image/png")}
    )
    assert OPENAI_IMAGE_EDITS.intake_form(body, content_type).model == "gpt-image-1"
    body, content_type = form({"prompt": "p"}, {"image[]": ("a.png", b"x", "image/png")})
    assert OPENAI_IMAGE_EDITS.intake_form(body, content_type).model == "dall-e-2"
    body, content_type = form({"model": "whisper-1"}, {"audio": ("a.wav", b"x", "audio/wav")})
    with pytest.raises(GatewayError) as refused:
        OPENAI_TRANSCRIPTIONS.intake_form(body, content_type)
    assert refused.value.param == "file"
    body, content_type = form({}, {"file": ("a.wav", b"x", "audio/wav")})
    with pytest.raises(GatewayError) as refused:
        OPENAI_TRANSCRIPTIONS.intake_form(body, content_type)
    assert refused.value.code == "missing_model"
    with pytest.raises(GatewayError) as refused:
        OPENAI_TRANSCRIPTIONS.intake_form(b'{"model":"whisper-1"}', b"application/json")
    assert refused.value.code == "invalid_content_type"


def test_usage_in_the_units_the_catalog_prices() -> None:
    images = orjson.dumps(
        {
            "data": [{"b64_json": "x"}, {"b64_json": "y"}],
            "usage": {"input_tokens": 9, "output_tokens": 99},
        }
    )
    assert OPENAI_IMAGES.call_usage(b"", images) == {
        "images": 2,
        "prompt_tokens": 9,
        "completion_tokens": 99,
        "total_tokens": 108,
    }
    # A malformed answer has no usage (so no cost), rather than a wrong one.
    assert OPENAI_IMAGES.call_usage(b"", b'{"data": "none"}') is None
    assert OPENAI_IMAGES.call_usage(b"", b"<html>") is None
    assert OPENAI_IMAGES.call_usage(b"", b'{"data": []}') == {"images": 0}
    assert OPENAI_SPEECH.call_usage(b'{"input":"hello"}', b"") == {"characters": 5}
    heard = b'{"text":"hi","usage":{"type":"duration","seconds":13}}'
    assert OPENAI_TRANSCRIPTIONS.call_usage(b"", heard) == {"seconds": 13.0}
    verbose = b'{"text":"hi","duration":12.5}'
    assert OPENAI_TRANSCRIPTIONS.call_usage(b"", verbose) == {"seconds": 12.5}
    # Formats that report nothing (text, srt, vtt): the WAV upload's own length.
    upload, _ = form({"model": "whisper-1"}, {"file": ("a.wav", wav(3.25), "audio/wav")})
    assert OPENAI_TRANSCRIPTIONS.call_usage(upload, b"hello there") == {"seconds": 3.25}
    assert OPENAI_TRANSCRIPTIONS.call_usage(b"", b"hello there") is None
    cohere = b'{"results":[],"meta":{"billed_units":{"search_units":2}}}'
    assert RERANK.call_usage(b"", cohere) == {"search_units": 2}
    compatible = b'{"results":[],"usage":{"total_tokens":40}}'
    assert RERANK.call_usage(b"", compatible) == {"prompt_tokens": 40, "total_tokens": 40}
    assert OPENAI_MODERATIONS.call_usage(b"", b'{"results":[{},{}]}') == {"inputs": 2}


def test_a_wav_files_duration_comes_from_its_header() -> None:
    assert wav_seconds(wav(2.0)[:64]) == pytest.approx(2.0)
    assert wav_seconds(b"ID3\x04 an mp3") is None
    assert wav_seconds(b"RIFF\x00\x00\x00\x00WAVE") is None


def test_rerank_errors_are_in_cohere_shape() -> None:
    body = RERANK.error_body(GatewayError(400, "'query' must be a non-empty string."))
    assert orjson.loads(body) == {"message": "'query' must be a non-empty string."}


def test_a_form_that_names_its_model_twice_is_refused() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nx\r\n'
        b"--b--\r\n"
    )
    with pytest.raises(GatewayError) as refused:
        OPENAI_TRANSCRIPTIONS.intake_form(body, b"multipart/form-data; boundary=b")
    assert refused.value.param == "model"


def test_a_wav_header_cannot_claim_more_audio_than_the_upload_holds() -> None:
    streaming = bytearray(wav(1.0))
    streaming[40:44] = b"\xff\xff\xff\xff"  # the data size a streaming writer leaves
    assert wav_seconds(bytes(streaming[:64]), len(streaming)) == pytest.approx(1.0)


def test_an_images_answer_is_metered_without_copying_its_images() -> None:
    """Counting a 40 MB answer's images must not hold a second copy of them (as parsing every
    base64 string into Python strings would)."""
    picture = "A" * 20_000_000
    answer = orjson.dumps({"data": [{"b64_json": picture}, {"b64_json": picture}]})
    tracemalloc.start()
    try:
        assert OPENAI_IMAGES.call_usage(b"", answer) == {"images": 2}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
