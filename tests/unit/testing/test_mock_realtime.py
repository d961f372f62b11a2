"""The mock provider's Realtime API (a WebSocket on `GET /v1/realtime`), driven with the
official `openai` SDK's realtime client and the `websockets` package it uses. Every wait is
bounded: a watchdog closes a connection that stalls, so a test fails instead of hanging."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect as ws_connect

from media_mock_key import MEDIA_KEY
from servers import Process

pytestmark = [
    pytest.mark.timeout(30),
    # The SDK holds websockets' connection without a `with` (websockets warns, not us).
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]

WS_OPTIONS: Any = {"open_timeout": 5, "close_timeout": 5}
USER_TEXT = "hello mock realtime world"  # 25 characters: 7 tokens


def client(mock: Process, key: str = MEDIA_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url + "/v1", api_key=key, max_retries=0, timeout=10)


@contextmanager
def watchdog(conn: Any, seconds: float = 10) -> Iterator[None]:
    """Close `conn` if the block takes longer than `seconds` (its reads then end)."""
    timer = threading.Timer(seconds, conn.close)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def until(conn: Any, last: str) -> list[Any]:
    """The events read up to and including the first of type `last`."""
    events = []
    for event in conn:
        events.append(event)
        if event.type == last:
            return events
    raise AssertionError(f"the connection ended before {last}: {[e.type for e in events]}")


def say(conn: Any, text: str = USER_TEXT) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    conn.conversation.item.create(item=item)


TEXT_RESPONSE = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]


def test_text_session_events_text_and_usage(media_mock: Process) -> None:
    with (
        client(media_mock).realtime.connect(
            model="gpt-realtime~echo,chunks=3", websocket_connection_options=WS_OPTIONS
        ) as conn,
        watchdog(conn),
    ):
        created = until(conn, "session.created")[0]
        assert created.session.model == "gpt-realtime"
        assert created.session.id.startswith("sess_")
        assert created.session.output_modalities == ["audio"]
        conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."}
        )
        updated = until(conn, "session.updated")[0]
        assert updated.session.output_modalities == ["text"]
        assert updated.session.instructions == "Be brief."
        assert updated.session.model == "gpt-realtime"
        say(conn)
        added, done = until(conn, "conversation.item.done")
        assert added.type == "conversation.item.added"
        assert added.item.id.startswith("item_")
        assert added.item.content[0].text == USER_TEXT
        assert done.item.id == added.item.id
        conn.response.create()
        events = until(conn, "response.done")
    assert [e.type for e in events] == TEXT_RESPONSE
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == USER_TEXT
    assert events[7].text == USER_TEXT
    response = events[-1].response
    assert response.status == "completed"
    assert response.output[0].content[0].text == USER_TEXT
    assert response.id == events[0].response.id
    # Input: "Be brief." (3) + the user's text (7); output: a token a word.
    assert response.usage.model_dump(exclude_none=True) == {
        "total_tokens": 14,
        "input_tokens": 10,
        "output_tokens": 4,
        "input_token_details": {"cached_tokens": 0, "text_tokens": 10, "audio_tokens": 0},
        "output_token_details": {"text_tokens": 4, "audio_tokens": 0},
    }
    recorded = httpx.get(media_mock.url + "/_mock/requests", timeout=5).json()
    mine = [r for r in recorded if r.get("model") == "gpt-realtime~echo,chunks=3"][-1]
    assert mine["path"] == "/v1/realtime"
    assert mine["method"] == "GET"
    assert "model=gpt-realtime" in mine["query"]
    assert mine["headers"]["authorization"] == f"Bearer {MEDIA_KEY}"


def test_audio_output_and_input_audio_are_counted(media_mock: Process) -> None:
    audio = base64.b64encode(bytes(9600)).decode()  # 200 ms of 24 kHz PCM16: 2 tokens
    with (
        client(media_mock).realtime.connect(
            model="gpt-realtime~words=4,chunks=2", websocket_connection_options=WS_OPTIONS
        ) as conn,
        watchdog(conn),
    ):
        until(conn, "session.created")
        conn.input_audio_buffer.append(audio=audio)
        conn.input_audio_buffer.commit()
        committed, added, _ = until(conn, "conversation.item.done")
        assert committed.type == "input_audio_buffer.committed"
        assert added.item.id == committed.item_id
        conn.response.create()
        events = until(conn, "response.done")
    kinds = [e.type for e in events]
    assert kinds[4:8] == [
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
    ]
    assert kinds[8:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    sound = b"".join(base64.b64decode(e.delta) for e in events if e.type.endswith("audio.delta"))
    assert sound == bytes(4 * 4800)  # 100 ms of silence a word
    transcript = events[9].transcript
    assert len(transcript.split()) == 4
    assert events[-1].response.output[0].content[0].transcript == transcript
    assert events[-1].response.output_modalities == ["audio"]
    usage = events[-1].response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (2, 8, 10)
    assert usage.input_token_details.audio_tokens == 2
    assert usage.output_token_details.audio_tokens == 4
    assert usage.output_token_details.text_tokens == 4


def test_unknown_and_malformed_events_get_errors_and_the_session_goes_on(
    media_mock: Process,
) -> None:
    with (
        client(media_mock).realtime.connect(
            model="gpt-realtime~words=3", websocket_connection_options=WS_OPTIONS
        ) as conn,
        watchdog(conn),
    ):
        until(conn, "session.created")
        conn.send_raw('{"type": "no.such.event", "event_id": "evt_client_1"}')
        (error,) = until(conn, "error")
        assert error.error.type == "invalid_request_error"
        assert error.error.code == "unknown_event"
        assert error.error.event_id == "evt_client_1"
        assert "no.such.event" in error.error.message
        conn.send_raw("{not json")
        (error,) = until(conn, "error")
        assert error.error.code == "invalid_json"
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        say(conn)
        conn.response.create()
        first = until(conn, "response.done")[-1].response
        conn.response.create()
        second = until(conn, "response.done")[-1].response
    assert first.status == "completed"
    assert first.output[0].content[0].text == second.output[0].content[0].text
    # The first reply joined the conversation: the second's input holds it, and the first's
    # input counts as cached.
    assert second.usage.input_tokens > first.usage.input_tokens
    assert second.usage.input_token_details.cached_tokens == first.usage.input_tokens


def test_a_wrong_or_missing_key_is_refused_before_the_upgrade(media_mock: Process) -> None:
    with pytest.raises(InvalidStatus) as caught:
        client(media_mock, "sk-wrong").realtime.connect(
            model="gpt-realtime", websocket_connection_options=WS_OPTIONS
        ).enter()
    assert caught.value.response.status_code == 401
    assert b"invalid_api_key" in caught.value.response.body


def test_handshake_checks(media_mock: Process) -> None:
    url = media_mock.url.replace("http://", "ws://")
    auth = {"Authorization": f"Bearer {MEDIA_KEY}"}
    with pytest.raises(InvalidStatus) as caught:
        ws_connect(url + "/v1/realtime", additional_headers=auth, open_timeout=5)
    assert caught.value.response.status_code == 400
    assert b"missing_required_parameter" in caught.value.response.body
    # Not a WebSocket upgrade: 400; a plain GET: 404, as before.
    answer = httpx.get(
        media_mock.url + "/v1/realtime?model=gpt-realtime",
        headers={**auth, "upgrade": "h2c", "connection": "upgrade"},
        timeout=5,
    )
    assert answer.status_code == 400
    plain = httpx.get(media_mock.url + "/v1/realtime?model=x", headers=auth, timeout=5)
    assert plain.status_code == 404
    # Faults on the handshake: an error status instead of the 101, or a slow 101.
    with pytest.raises(InvalidStatus) as caught:
        ws_connect(url + "/realtime?model=gpt-realtime~status=503", additional_headers=auth)
    assert caught.value.response.status_code == 503
    started = time.monotonic()
    with ws_connect(
        url + "/realtime?model=gpt-realtime~latency_ms=300", additional_headers=auth
    ) as ws:
        assert time.monotonic() - started >= 0.3
        assert '"session.created"' in ws.recv(timeout=5)


def test_ping_is_answered_and_a_close_is_returned(media_mock: Process) -> None:
    url = media_mock.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    with ws_connect(
        url, additional_headers={"Authorization": f"Bearer {MEDIA_KEY}"}, close_timeout=5
    ) as ws:
        ws.recv(timeout=5)
        assert ws.ping(b"hi").wait(5)
        ws.close(1000, "bye")
    # The server answered the close frame (1006 would mean the connection just dropped).
    assert ws.close_code == 1000
    assert ws.protocol.close_rcvd is not None


def test_cut_after_drops_the_connection(media_mock: Process) -> None:
    with (
        client(media_mock).realtime.connect(
            model="gpt-realtime~cut_after=3", websocket_connection_options=WS_OPTIONS
        ) as conn,
        watchdog(conn),
    ):
        until(conn, "session.created")
        conn.response.create()
        seen = []
        with pytest.raises(ConnectionClosed) as caught:
            for event in conn:
                seen.append(event.type)
    assert isinstance(caught.value, ConnectionClosedError)
    assert caught.value.rcvd is None  # no close frame: the connection dropped
    assert seen == ["response.created", "response.output_item.added", "conversation.item.added"]
    streams = httpx.get(media_mock.url + "/_mock/stats", timeout=5).json()["streams"]
    assert [s for s in streams if s["id"].startswith("resp_")][-1]["state"] == "cut"


def test_stream_error_after_ends_the_response_without_done(media_mock: Process) -> None:
    with (
        client(media_mock).realtime.connect(
            model="gpt-realtime~stream_error_after=2", websocket_connection_options=WS_OPTIONS
        ) as conn,
        watchdog(conn),
    ):
        until(conn, "session.created")
        conn.response.create()
        events = until(conn, "error")
        assert [e.type for e in events] == [
            "response.created",
            "response.output_item.added",
            "error",
        ]
        assert events[-1].error.type == "server_error"
        conn.session.update(session={"type": "realtime", "instructions": "still here"})
        assert until(conn, "session.updated")[0].session.instructions == "still here"


async def test_async_client(media_mock: Process) -> None:
    async_client = openai.AsyncOpenAI(
        base_url=media_mock.url + "/v1", api_key=MEDIA_KEY, max_retries=0, timeout=10
    )
    async with asyncio.timeout(15):
        async with async_client.realtime.connect(
            model="gpt-realtime~echo", websocket_connection_options=WS_OPTIONS
        ) as conn:
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "async hello"}],
                }
            )
            await conn.response.create()
            kinds = []
            async for event in conn:
                kinds.append(event.type)
                if event.type == "response.done":
                    done = event
                    break
    assert kinds[0] == "session.created"
    assert done.response.output[0].content[0].text == "async hello"
    assert done.response.usage.output_tokens == 2
