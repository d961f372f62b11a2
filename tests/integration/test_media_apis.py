"""Images, audio, moderations and rerank through the gateway, with the official SDKs as
clients (openai; cohere for rerank) against the mock provider in each wire format that serves
them: answers as the SDKs read them, uploads passed through untouched (the model renamed when
a deployment says so), speech relayed as it comes, errors in the API's own format, limits
applied, and every call recorded with the catalog's price of its units."""

from __future__ import annotations

import base64
import io
import signal
import struct
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import cohere
import httpx
import httpx2
import openai
import pytest

from call_records import stored_records
from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY, recording_gateway
from servers import Process, start_gateway

PNG = b"\x89PNG\r\n\x1a\n"


def wav(seconds: float, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV file of silence lasting `seconds`."""
    frames = int(seconds * rate)
    data = b"\x00\x00" * frames
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


def config(mock: Process) -> dict[str, Any]:
    compatible = {"type": "openai_compatible", "base_url": mock.url + "/v1"}
    return {
        "server": {"limits": {"max_upload_bytes": 2 * 1024 * 1024}},
        "providers": {
            "mock": {**compatible, "api_key_env": "MOCK_KEY"},
            "azure": {
                "type": "azure",
                "base_url": mock.url,
                "api_key_env": "MOCK_KEY",
                "api_version": "2025-04-01-preview",
            },
            "cohere": {"type": "cohere", "base_url": mock.url + "/v2", "api_key_env": "MOCK_KEY"},
            "gemini": {
                "type": "gemini",
                "base_url": mock.url + "/v1beta",
                "api_key_env": "MOCK_KEY",
            },
            "vllm": {"type": "vllm", "base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"},
            "anthropic": {
                "type": "anthropic",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            },
        },
        "models": {
            "dall-e-3": {"deployments": [{"provider": "mock"}]},
            "dall-e-2": {"deployments": [{"provider": "mock"}]},
            "gpt-image-1": {"deployments": [{"provider": "mock"}]},
            "azure-images": {"deployments": [{"provider": "azure", "model": "dall-e-3"}]},
            "gemini-image": {
                "deployments": [{"provider": "gemini", "model": "gemini-2.5-flash-image"}]
            },
            "image-editor": {"deployments": [{"provider": "mock", "model": "dall-e-2"}]},
            "tts-1": {"deployments": [{"provider": "mock"}]},
            "tts-cut": {"deployments": [{"provider": "mock", "model": "tts-1~cut_after=2"}]},
            "whisper-1": {"deployments": [{"provider": "mock"}]},
            "transcriber": {"deployments": [{"provider": "mock", "model": "whisper-1"}]},
            "omni-moderation-latest": {"deployments": [{"provider": "mock"}]},
            "limited-moderation": {
                "deployments": [{"provider": "mock", "model": "omni-moderation-latest"}]
            },
            "rerank-v3.5": {"deployments": [{"provider": "cohere"}]},
            "bge-reranker": {"deployments": [{"provider": "vllm"}]},
            "claude-sonnet-4": {"deployments": [{"provider": "anthropic"}]},
        },
        "catalog": {
            "bge-reranker": {
                "provider": "vllm",
                "mode": "rerank",
                "context_window": 8192,
                "input": "0.05",
            },
        },
        "rate_limits": {
            "rules": [{"scope": "model", "match": ["limited-moderation"], "requests_per_minute": 2}]
        },
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }


@pytest.fixture(scope="module")
def served(workdir: Path, mock: Process) -> Iterator[tuple[Process, Path]]:
    yield from recording_gateway(workdir, config(mock), "media")


@pytest.fixture(scope="module")
def client(served: tuple[Process, Path]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0].url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def last_upstream_request(mock: Process) -> dict[str, Any]:
    seen = httpx.get(mock.url + "/_mock/requests").json()
    return seen[-1]


def rid(name: str) -> dict[str, str]:
    return {"x-request-id": name}


def test_images_are_generated_and_priced_per_image(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="dall-e-2",
        prompt="a lighthouse at dusk",
        n=2,
        response_format="b64_json",
        extra_headers=rid("images-dalle"),
    )
    assert len(result.data) == 2
    for image in result.data:
        assert image.b64_json is not None
        assert base64.b64decode(image.b64_json).startswith(PNG)
    tokens = client.images.generate(
        model="gpt-image-1", prompt="a red kite", extra_headers=rid("images-tokens")
    )
    assert tokens.usage is not None and tokens.usage.output_tokens > 0
    azure = client.images.generate(
        model="azure-images", prompt="a harbour", extra_headers=rid("images-azure")
    )
    assert len(azure.data) == 1


def test_images_from_a_gemini_image_model_come_in_openais_shape(
    client: openai.OpenAI, mock: Process
) -> None:
    result = client.images.generate(
        model="gemini-image", prompt="a lighthouse", n=2, extra_headers=rid("images-gemini")
    )
    assert len(result.data) == 2
    for image in result.data:
        assert image.b64_json is not None
        assert base64.b64decode(image.b64_json).startswith(PNG)
    assert result.usage is not None and result.usage.output_tokens == 2 * 1290
    seen = last_upstream_request(mock)
    assert seen["path"].endswith("/models/gemini-2.5-flash-image:generateContent")
    config = seen["body"]["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"] and config["candidateCount"] == 2
    with pytest.raises(openai.BadRequestError) as streamed:
        client.images.generate(model="gemini-image", prompt="a lighthouse", stream=True)
    assert streamed.value.body["param"] == "stream"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as edit:
        client.images.edit(
            model="gemini-image",
            image=("a.png", io.BytesIO(PNG), "image/png"),
            prompt="blue",
        )
    assert edit.value.code == "unsupported_endpoint"


def test_an_image_edit_passes_its_upload_through_with_the_model_renamed(
    client: openai.OpenAI, mock: Process
) -> None:
    picture = PNG + bytes(range(256)) * 64
    result = client.images.edit(
        model="image-editor",
        image=("kite.png", io.BytesIO(picture), "image/png"),
        prompt="add a second kite",
        extra_headers=rid("images-edit"),
    )
    assert len(result.data) == 1
    seen = last_upstream_request(mock)
    assert seen["path"].endswith("/images/edits")
    assert seen["model"] == "dall-e-2"
    upload = seen["body"]["image"]
    assert (upload["filename"], upload["size"]) == ("kite.png", len(picture))
    assert seen["body"]["prompt"] == "add a second kite"
    variation = client.images.create_variation(
        model="dall-e-2",
        image=("kite.png", io.BytesIO(picture), "image/png"),
        n=3,
        extra_headers=rid("images-variation"),
    )
    assert len(variation.data) == 3


def test_speech_is_relayed_as_audio(client: openai.OpenAI) -> None:
    text = "The sea was calm and the light was low over the water."
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=text,
        response_format="wav",
        extra_headers=rid("speech"),
    ) as response:
        assert response.headers["content-type"].startswith("audio/wav")
        assert response.headers.get("transfer-encoding") == "chunked"
        audio = b"".join(response.iter_bytes())
    assert audio.startswith(b"RIFF") and audio[8:12] == b"WAVE"
    assert len(audio) > 1000
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        client.audio.speech.with_streaming_response.create(
            model="tts-cut", voice="alloy", input=text, extra_headers=rid("speech-cut")
        ) as cut,
    ):
        b"".join(cut.iter_bytes())


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
def test_transcriptions_in_every_response_format(
    client: openai.OpenAI, response_format: Any
) -> None:
    audio = wav(12.5)
    result: Any = client.audio.transcriptions.create(
        model="transcriber",
        file=("note.wav", io.BytesIO(audio), "audio/wav"),
        response_format=response_format,
        extra_headers=rid(f"transcribe-{response_format}"),
    )
    if response_format == "json":
        assert result.text
    elif response_format == "verbose_json":
        assert result.duration == pytest.approx(12.5, abs=0.01)
        assert result.segments
    elif response_format == "vtt":
        assert isinstance(result, str) and result.startswith("WEBVTT")
    elif response_format == "srt":
        assert isinstance(result, str) and "-->" in result
    else:
        assert isinstance(result, str) and result.strip()
    translated = client.audio.translations.create(
        model="whisper-1",
        file=("note.wav", io.BytesIO(audio), "audio/wav"),
        extra_headers=rid(f"translate-{response_format}"),
    )
    assert translated.text


def test_moderations_and_their_rate_limit(client: openai.OpenAI) -> None:
    result = client.moderations.create(
        input=["a quiet walk by the sea", "I will kill the lights"],
        extra_headers=rid("moderation"),
    )
    assert [r.flagged for r in result.results] == [False, True]
    for i in range(2):
        client.moderations.create(
            model="limited-moderation", input="hello", extra_headers=rid(f"moderation-{i}")
        )
    with pytest.raises(openai.RateLimitError) as refused:
        client.moderations.create(
            model="limited-moderation", input="hello", extra_headers=rid("moderation-refused")
        )
    assert refused.value.response.headers.get("retry-after")


def test_rerank_with_the_cohere_sdk_and_the_compatible_shape(
    served: tuple[Process, Path],
) -> None:
    gateway = served[0]
    co = cohere.ClientV2(base_url=gateway.url, api_key=CLIENT_KEY)
    documents = [
        "Lighthouses guide ships at night.",
        "Bread is baked in an oven.",
        "A ship sails past the lighthouse at night.",
    ]
    ranked = co.rerank(
        model="rerank-v3.5",
        query="ship lighthouse night",
        documents=documents,
        top_n=2,
        request_options={"additional_headers": rid("rerank-cohere")},
    )
    assert len(ranked.results) == 2
    scores = [r.relevance_score for r in ranked.results]
    assert scores == sorted(scores, reverse=True)
    assert 1 not in [r.index for r in ranked.results]
    compatible = httpx.post(
        gateway.url + "/v1/rerank",
        headers={"authorization": f"Bearer {CLIENT_KEY}", **rid("rerank-compatible")},
        json={"model": "bge-reranker", "query": "bread oven", "documents": documents},
    )
    assert compatible.status_code == 200, compatible.text
    best = compatible.json()["results"][0]
    assert best["index"] == 1


def test_bad_media_calls_get_clear_errors_and_reach_no_provider(
    served: tuple[Process, Path], client: openai.OpenAI, mock: Process
) -> None:
    gateway = served[0]
    before = httpx.get(mock.url + "/_mock/stats").json()["requests"]
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.images.generate(model="claude-sonnet-4", prompt="a kite")
    assert unsupported.value.code == "unsupported_endpoint"
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    no_file = httpx.post(
        gateway.url + "/v1/audio/transcriptions",
        headers=headers,
        data={"model": "whisper-1"},
        files={"other": ("x.txt", b"x", "text/plain")},
    )
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"
    not_a_form = httpx.post(
        gateway.url + "/v1/images/edits", headers=headers, json={"model": "dall-e-2"}
    )
    assert not_a_form.status_code == 400
    assert not_a_form.json()["error"]["code"] == "invalid_content_type"
    broken = httpx.post(
        gateway.url + "/v1/images/edits",
        headers={**headers, "content-type": "multipart/form-data; boundary=xyz"},
        content=b"--xyz\r\nContent-Disposition: form-data; name=model\r\n\r\ndall-e-2",
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_multipart"
    too_big = httpx.post(
        gateway.url + "/v1/audio/transcriptions",
        headers=headers,
        data={"model": "whisper-1"},
        files={"file": ("long.wav", wav(70.0), "audio/wav")},
    )
    assert too_big.status_code == 413
    assert "error" in too_big.json()
    no_key = httpx.post(gateway.url + "/v1/moderations", json={"input": "hello"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["message"]
    no_query = httpx.post(
        gateway.url + "/v2/rerank",
        headers=headers,
        json={"model": "rerank-v3.5", "documents": ["a"]},
    )
    assert no_query.status_code == 400 and "query" in no_query.json()["message"]
    assert httpx.get(mock.url + "/_mock/stats").json()["requests"] == before


def test_every_media_call_is_recorded_with_its_units_price(
    served: tuple[Process, Path],
) -> None:
    """Last in the module: the records of the calls the tests above made, by request id."""
    gateway, data = served
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(60) == 0
    rows = stored_records(data)
    cost = {name: Decimal(row.cost) if row.cost is not None else None for name, row in rows.items()}
    assert cost["images-dalle"] == Decimal("0.04")
    assert cost["images-azure"] == Decimal("0.04")
    assert cost["images-edit"] == Decimal("0.02")
    assert cost["images-variation"] == Decimal("0.06")
    gemini = rows["images-gemini"]
    assert (gemini.output_tokens, gemini.outcome) == (2580, "completed")
    assert cost["images-gemini"] == (
        gemini.input_tokens * Decimal("0.30") + 2580 * Decimal("30")
    ) / Decimal(1_000_000)
    image_tokens = rows["images-tokens"]
    assert image_tokens.output_tokens > 0
    assert cost["images-tokens"] == (
        image_tokens.input_tokens * Decimal("5") + image_tokens.output_tokens * Decimal("40")
    ) / Decimal(1_000_000)
    text = "The sea was calm and the light was low over the water."
    assert cost["speech"] == len(text) * Decimal("0.000015")
    assert rows["speech-cut"].outcome == "upstream_error"
    for response_format in ("json", "text", "srt", "vtt", "verbose_json"):
        # 12.5 s of audio at $0.006 a minute; reported rounded up to whole seconds by the
        # json format, read from the WAV upload for the formats that report nothing.
        priced = cost[f"transcribe-{response_format}"]
        assert priced in (Decimal("0.00125"), Decimal("0.0013")), (response_format, priced)
        assert rows[f"transcribe-{response_format}"].model == "transcriber"
    assert cost["moderation"] == Decimal(0)
    assert rows["moderation-refused"].status == 429
    assert cost["rerank-cohere"] == Decimal("0.002")
    compatible = rows["rerank-compatible"]
    assert compatible.input_tokens > 0
    assert cost["rerank-compatible"] == compatible.input_tokens * Decimal("0.05") / Decimal(
        1_000_000
    )


@pytest.fixture(scope="module")
def lone_worker(workdir: Path, mock: Process) -> Iterator[Process]:
    """A gateway that is one process (no store, one worker): its memory is the worker's."""
    gateway = start_gateway(
        workdir,
        {
            "providers": {
                "mock": {
                    "type": "openai_compatible",
                    "base_url": mock.url + "/v1",
                    "api_key_env": "MOCK_KEY",
                }
            },
            "models": {
                "image-editor": {"deployments": [{"provider": "mock", "model": "dall-e-2"}]},
                # 20 minutes of 24 kHz 16-bit speech: 57.6 MB of audio, in 1,200 pieces.
                "long-voice": {
                    "deployments": [
                        {"provider": "mock", "model": "tts-1~audio_seconds=1200,chunks=1200"}
                    ]
                },
            },
            "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
        },
        env={"MOCK_KEY": UPSTREAM_KEY},
    )
    yield gateway
    gateway.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_100_mb_upload_passes_through_in_bounded_memory(
    lone_worker: Process, mock: Process
) -> None:
    client = openai.OpenAI(base_url=lone_worker.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    small = PNG + b"\x00" * 1000
    client.images.edit(
        model="image-editor", image=("s.png", io.BytesIO(small), "image/png"), prompt="x"
    )
    before = peak_rss_mb(lone_worker.proc.pid)
    picture = PNG + bytes(range(256)) * (100 * 1024 * 1024 // 256)
    result = client.images.edit(
        model="image-editor",
        image=("huge.png", io.BytesIO(picture), "image/png"),
        prompt="the same, but blue",
    )
    assert len(result.data) == 1
    seen = last_upstream_request(mock)
    assert seen["model"] == "dall-e-2"  # renamed in the form's first bytes, as it streamed
    assert seen["body"]["image"]["size"] == len(picture)
    after = peak_rss_mb(lone_worker.proc.pid)
    print(f"worker peak RSS: {before:.1f} MB before the 100 MB upload, {after:.1f} MB after")
    # Held whole, the upload would raise the worker's peak by its size at least (100 MB).
    assert after - before < 40, (before, after)


def test_a_long_speech_stream_passes_through_in_bounded_memory(lone_worker: Process) -> None:
    client = openai.OpenAI(base_url=lone_worker.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    before = peak_rss_mb(lone_worker.proc.pid)
    received = 0
    with client.audio.speech.with_streaming_response.create(
        model="long-voice", voice="alloy", input="A long reading.", response_format="wav"
    ) as answer:
        pieces = answer.iter_bytes(64 * 1024)
        head = next(pieces)
        assert head[:4] == b"RIFF"
        received += len(head)
        # A listener that falls behind: what the provider sends meanwhile must wait in the
        # sockets (the gateway stops reading it), not pile up in the worker.
        time.sleep(1.5)
        for piece in pieces:
            received += len(piece)
    assert received == 44 + 1200 * 24_000 * 2
    after = peak_rss_mb(lone_worker.proc.pid)
    print(
        f"worker peak RSS: {before:.1f} MB before a {received / 1e6:.1f} MB speech stream, "
        f"{after:.1f} MB after"
    )
    # Held whole, the stream would raise the worker's peak by its size (57.6 MB).
    assert after - before < 25, (before, after)


def test_a_large_form_must_name_its_model_before_its_files(lone_worker: Process) -> None:
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"'
        b"\r\nContent-Type: image/png\r\n\r\n"
        + PNG
        + b"\x01" * (3 * 1024 * 1024)
        + b"\r\n--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
        b"image-editor\r\n--" + boundary + b"--\r\n"
    )
    answer = httpx.post(
        lone_worker.url + "/v1/images/edits",
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "content-type": "multipart/form-data; boundary=" + boundary.decode(),
        },
        content=body,
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "model"
