"""The mock provider's audio endpoints (speech, transcriptions, translations), driven with the
official `openai` SDK and httpx."""

from __future__ import annotations

import base64
import io
import json
import time
import wave

import httpx
import httpx2
import openai
import pytest

from tollway.testing import mock_audio

from media_mock_key import MEDIA_KEY
from servers import Process


def client(mock: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url + "/v1", api_key=MEDIA_KEY, max_retries=0, timeout=10)


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {MEDIA_KEY}"}


def make_wav(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(int(seconds * rate) * 2))
    return out.getvalue()


def stream_state(mock: Process, sid_prefix: str) -> dict[str, object]:
    streams = httpx.get(mock.url + "/_mock/stats").json()["streams"]
    found: dict[str, object] = [s for s in streams if s["id"].startswith(sid_prefix)][-1]
    return found


# -- speech ------------------------------------------------------------------------------------


def test_speech_wav_is_a_valid_file_as_long_as_the_text(media_mock: Process) -> None:
    text = "Hello from the mock provider."  # 29 characters: 1.74 s
    with client(media_mock).audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts~chunks=5", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers["transfer-encoding"] == "chunked"
        data = response.read()
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) == (
            24000,
            2,
            1,
        )
        assert reader.getnframes() / reader.getframerate() == pytest.approx(len(text) * 0.06)
    state = stream_state(media_mock, "speech-")
    assert state["state"] == "completed"
    assert state["chunks_sent"] == 5
    assert state["bytes_sent"] == len(data)


@pytest.mark.parametrize(
    ("fmt", "content_type", "magic"),
    [
        ("mp3", "audio/mpeg", b"ID3"),
        ("opus", "audio/opus", b"OggS"),
        ("aac", "audio/aac", b"\xff\xf1"),
        ("flac", "audio/flac", b"fLaC"),
        ("pcm", "audio/pcm", b"\x00\x00"),
    ],
)
def test_speech_formats_have_their_type_and_header_and_grow_with_the_text(
    media_mock: Process, fmt: str, content_type: str, magic: bytes
) -> None:
    sizes = []
    for text in ("short text", "a text five times as long as the short one's length ok"):
        response = client(media_mock).audio.speech.create(
            model="tts-1",
            voice="nova",
            input=text,
            response_format=fmt,  # type: ignore[arg-type]
        )
        assert response.response.headers["content-type"] == content_type
        assert response.content.startswith(magic)
        sizes.append(len(response.content))
    assert sizes[1] > 4 * sizes[0]
    if fmt == "pcm":
        assert sizes[0] == 10 * 0.06 * 24_000 * 2


def test_speech_defaults_to_mp3_and_speed_shortens_it(media_mock: Process) -> None:
    normal = client(media_mock).audio.speech.create(model="tts-1", voice="echo", input="x" * 100)
    fast = client(media_mock).audio.speech.create(
        model="tts-1", voice="echo", input="x" * 100, speed=2.0
    )
    assert normal.response.headers["content-type"] == "audio/mpeg"
    assert normal.content[10:12] == b"\xff\xf3"  # an MPEG frame after the ID3 header
    assert len(fast.content) < 0.6 * len(normal.content)


def test_speech_as_sse_carries_base64_audio_and_usage(media_mock: Process) -> None:
    with httpx.stream(
        "POST",
        media_mock.url + "/v1/audio/speech",
        headers=auth(),
        json={
            "model": "gpt-4o-mini-tts~chunks=4",
            "voice": "coral",
            "input": "sse speech",
            "response_format": "pcm",
            "stream_format": "sse",
        },
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[len("data: ") :])
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 4 + ["speech.audio.done"]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) == 10 * 0.06 * 24_000 * 2
    usage = events[-1]["usage"]
    assert usage["input_tokens"] == 3
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_a_cut_speech_stream_raises_midway(media_mock: Process) -> None:
    with (
        # openai reads the body with httpx2, which reports the cut as a protocol error
        pytest.raises((httpx2.RemoteProtocolError, openai.APIConnectionError)),
        client(media_mock).audio.speech.with_streaming_response.create(
            model="tts-1~cut_after=3,chunks=10",
            voice="alloy",
            input="cut me off " * 10,
            response_format="wav",
        ) as response,
    ):
        response.read()
    state = stream_state(media_mock, "speech-")
    assert state["state"] == "cut"
    assert state["chunks_sent"] == 3


def test_speech_latency_delays_the_head(media_mock: Process) -> None:
    start = time.monotonic()
    with client(media_mock).audio.speech.with_streaming_response.create(
        model="tts-1~latency_ms=300", voice="alloy", input="slow"
    ) as response:
        assert time.monotonic() - start >= 0.3
        assert response.read()


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"voice": None}, "voice"),
        ({"voice": "robot"}, "voice"),
        ({"input": None}, "input"),
        ({"input": "x" * 4097}, "input"),
        ({"response_format": "ogg"}, "response_format"),
        ({"speed": 9}, "speed"),
        ({"stream_format": "sse"}, "stream_format"),  # tts-1 does not stream SSE
    ],
)
def test_malformed_speech_gets_a_400_naming_the_param(
    media_mock: Process, change: dict[str, object], param: str
) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "hi", **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(media_mock.url + "/v1/audio/speech", headers=auth(), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_model_is_required_for_speech(media_mock: Process) -> None:
    response = httpx.post(
        media_mock.url + "/v1/audio/speech", headers=auth(), json={"voice": "alloy", "input": "x"}
    )
    assert response.status_code == 400


# -- transcriptions and translations -----------------------------------------------------------

WAV = make_wav(2.5)


def test_transcription_json_reads_the_wav_duration(media_mock: Process) -> None:
    result = client(media_mock).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", WAV, "audio/wav")
    )
    assert result.text == "mock transcript of 2.5 seconds of audio"
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == 3  # rounded up
    other = client(media_mock).audio.transcriptions.create(
        model="whisper-1",
        file=("talk.m4a", b"\x01" * 40_000, "audio/mp4"),
        prompt="Hello, Tollway.",
    )
    assert other.text == "Hello, Tollway."  # the prompt, echoed
    assert other.usage is not None and other.usage.seconds == 3  # 40,000 / 16,000 = 2.5


def test_transcription_text_srt_and_vtt(media_mock: Process) -> None:
    api = client(media_mock).audio.transcriptions
    text = api.create(model="whisper-1", file=("a.wav", WAV), response_format="text")
    assert text == "mock transcript of 2.5 seconds of audio\n"
    srt = api.create(model="whisper-1", file=("a.wav", WAV), response_format="srt")
    assert srt == "1\n00:00:00,000 --> 00:00:02,500\nmock transcript of 2.5 seconds of audio\n\n"
    vtt = api.create(model="whisper-1", file=("a.wav", WAV), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nmock transcript")
    raw = httpx.post(
        media_mock.url + "/v1/audio/transcriptions",
        headers=auth(),
        data={"model": "whisper-1", "response_format": "srt"},
        files={"file": ("a.wav", WAV, "audio/wav")},
    )
    assert raw.headers["content-type"].startswith("text/plain")


def test_transcription_verbose_json_has_segments_and_words(media_mock: Process) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(20))
    result = client(media_mock).audio.transcriptions.create(
        model="whisper-1",
        file=("a.wav", WAV),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        prompt=long_prompt,
        language="en",
    )
    assert result.duration == 2.5
    assert result.language == "en"
    assert result.text == long_prompt
    assert [s.text.strip() for s in result.segments or []] == [
        " ".join(long_prompt.split()[i : i + 8]) for i in (0, 8, 16)
    ]
    assert (result.segments or [])[-1].end == 2.5
    assert [w.word for w in result.words or []] == long_prompt.split()
    assert result.usage is not None and result.usage.seconds == 3
    record = httpx.get(media_mock.url + "/_mock/requests").json()[-1]["body"]
    assert record["timestamp_granularities[]"] == ["word", "segment"]
    assert record["file"]["filename"] == "a.wav"
    assert record["file"]["size"] == len(WAV)  # the file's size, never its bytes


def test_gpt_4o_transcribe_reports_tokens(media_mock: Process) -> None:
    result = client(media_mock).audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("a.wav", WAV), prompt="twelve chars"
    )
    usage = result.usage
    assert usage is not None and usage.type == "tokens"
    assert usage.input_token_details is not None
    assert usage.input_token_details.audio_tokens == 25
    assert usage.input_token_details.text_tokens == 3
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    with pytest.raises(openai.BadRequestError) as caught:
        client(media_mock).audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", WAV), response_format="srt"
        )
    assert caught.value.param == "response_format"


def test_gpt_4o_transcribe_streams_deltas(media_mock: Process) -> None:
    stream = client(media_mock).audio.transcriptions.create(
        model="gpt-4o-mini-transcribe~chunks=3", file=("a.wav", WAV), stream=True
    )
    events = list(stream)
    assert [e.type for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1] if e.type == "transcript.text.delta") == done.text


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation_is_whisper_only(media_mock: Process) -> None:
    api = client(media_mock).audio.translations
    result = api.create(model="whisper-1", file=("a.wav", make_wav(1.0)))
    assert result.text == "mock translation of 1.0 seconds of audio"
    verbose = api.create(model="whisper-1", file=("a.wav", WAV), response_format="verbose_json")
    assert verbose.language == "english"
    assert verbose.model_dump()["task"] == "translate"
    with pytest.raises(openai.BadRequestError) as caught:
        api.create(model="gpt-4o-transcribe", file=("a.wav", WAV))
    assert caught.value.param == "model"


def test_model_is_required_for_transcriptions(media_mock: Process) -> None:
    response = httpx.post(
        media_mock.url + "/v1/audio/transcriptions",
        headers=auth(),
        files={"file": ("a.wav", WAV, "audio/wav")},
    )
    assert response.status_code == 400
    assert "model" in response.json()["error"]["message"]


def test_wav_duration_from_the_header() -> None:
    assert mock_audio.audio_seconds(make_wav(1.25, 8000)) == pytest.approx(1.25)
    assert mock_audio.audio_seconds(b"\x00" * 8000) == 0.5
    assert mock_audio.audio_seconds(mock_audio.audio_bytes("wav", 3.0)) == pytest.approx(3.0)
