"""A realtime session's meter: the usage of its responses summed from the provider's frames as
they pass, the audio deltas skipped, a close frame noticed, broken framing leaving the relay
alone."""

from __future__ import annotations

import orjson

from tollway.llm.realtime import SessionUsage
from tollway.llm.websocket import CLOSE, TEXT, frame


def done(
    input_tokens: int, output_tokens: int, cached: int, audio_in: int, audio_out: int
) -> bytes:
    event = {
        "type": "response.done",
        "event_id": "e1",
        "response": {
            "id": "resp_1",
            "usage": {
                "total_tokens": input_tokens + output_tokens,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "input_token_details": {"cached_tokens": cached, "audio_tokens": audio_in},
                "output_token_details": {"text_tokens": 1, "audio_tokens": audio_out},
            },
        },
    }
    return frame(TEXT, orjson.dumps(event))


def test_a_sessions_responses_are_summed() -> None:
    meter = SessionUsage()
    assert meter.usage is None
    audio = frame(TEXT, b'{"type":"response.output_audio.delta","delta":"' + b"A" * 100_000 + b'"}')
    stream = (
        audio + done(10, 4, 0, 6, 3) + audio + done(20, 5, 10, 0, 4) + frame(CLOSE, b"\x03\xe8")
    )
    for at in range(0, len(stream), 777):
        meter.feed(stream[at : at + 777])
    assert meter.usage == {
        "prompt_tokens": 30,
        "completion_tokens": 9,
        "total_tokens": 39,
        "prompt_tokens_details": {"cached_tokens": 10, "audio_tokens": 6},
        "completion_tokens_details": {"audio_tokens": 7},
    }
    assert meter.closed and meter.responses == 2


def test_frames_it_cannot_read_stop_the_meter_not_the_session() -> None:
    meter = SessionUsage()
    meter.feed(done(1, 1, 0, 0, 0))
    meter.feed(bytes([0x80 | 0x40 | TEXT, 0]))  # reserved bits: not framing it can read
    meter.feed(done(5, 5, 0, 0, 0))
    assert meter.usage is not None and meter.usage["total_tokens"] == 2
