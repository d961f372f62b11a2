"""OpenAI's Realtime API (GA) over WebSocket, as the mock provider speaks it:
`GET /v1/realtime?model=...` with `Upgrade: websocket`, then JSON events both ways.

The handshake is checked as the other endpoints are (the key by mock_provider's dispatch; here
the upgrade itself and `model`), and honours a `FaultSpec` (an error status or a reset instead of
the 101, latency before it). Once switched, a `RealtimeSession` is the connection's protocol:
it answers pings and a close at once, and handles the client's events one at a time, in order
(a response.create is answered in full, paced by `chunk_delay_ms`, before the next event is
read). Replies are deterministic (mock_reply's rules: words chosen by the last user text, or that
text with `echo`); usage counts as the other formats do (see `_usage`).

Framing is tollway.llm.websocket's: the client's frames are masked, the server's are not, and
no extension (compression) is ever negotiated.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import math
import random
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

import orjson

from tollway.llm.websocket import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameError,
    MessageReader,
    accept_key,
    frame,
)
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import ClientGone, Request
from tollway.testing import mock_openai as wire
from tollway.testing.mock_delivery import Delivery, StreamRecord, reset_connection
from tollway.testing.mock_faults import FaultSpec, FaultSpecError, split_model
from tollway.testing.mock_realtime_items import audio_bytes, item_text, merged
from tollway.testing.mock_reply import Ask, plan

# One audio token is 100 ms of the session's audio: 24 kHz 16-bit mono PCM, 4,800 bytes (input
# audio is counted this way; each output word comes with one token's worth of silence).
AUDIO_TOKEN_BYTES = 4800
# The most a client event may hold (OpenAI's limit is 15 MiB).
_MAX_EVENT = 16 * 1024 * 1024
_STREAMS_KEPT = 100
_CLIENT_EVENTS = tuple(
    "session.update conversation.item.create conversation.item.delete input_audio_buffer.append "
    "input_audio_buffer.commit input_audio_buffer.clear response.create response.cancel".split()
)
_PCM = {"type": "audio/pcm", "rate": 24000}


def wants_upgrade(request: Request) -> bool:
    """Whether a request asks for a WebSocket (properly or not: `open_session` checks)."""
    headers = {name for name, _ in request.headers}
    return b"upgrade" in headers or b"sec-websocket-key" in headers


def _bad_request(message: str, param: str | None = None, code: str | None = None) -> bytes:
    kind = "invalid_request_error"
    error = {"message": message, "type": kind, "param": param, "code": code}
    return orjson.dumps({"error": error})


def open_session(
    request: Request,
    conn: HttpConnection,
    *,
    defaults: FaultSpec,
    rng: random.Random,
    ids: itertools.count[int],
    delivery: Delivery,
    record: dict[str, Any],
) -> Awaitable[None] | None:
    """Answer the handshake: a plain HTTP error (the connection then closes), a reset, or the
    session (a task that switches protocols and serves it until either end closes)."""
    upgrade = (request.header(b"upgrade") or b"").strip().lower()
    key = request.header(b"sec-websocket-key") or b""
    connection = (request.header(b"connection") or b"").lower()
    if upgrade != b"websocket" or not key.strip() or b"upgrade" not in connection:
        message = "Expected a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key)."
        conn.send_json(400, _bad_request(message))
        return None
    query = parse_qs(request.query.decode("latin-1"))
    record["query"] = request.query.decode("latin-1")
    models = query.get("model") or []
    if not models or not models[0]:
        message = "Missing required parameter: 'model'."
        conn.send_json(400, _bad_request(message, "model", "missing_required_parameter"))
        return None
    record["model"] = models[0]
    model, settings = split_model(models[0])
    try:
        fault = (request.header(b"x-mock-fault") or b"").decode()
        spec = defaults.merged(fault).merged(settings)
    except FaultSpecError as exc:
        conn.send_json(400, wire.error(400, str(exc)))
        return None
    if spec.reset or (spec.reset_rate and rng.random() < spec.reset_rate):
        reset_connection(conn)
        return None
    status = spec.status
    if status is None and spec.error_rate and rng.random() < spec.error_rate:
        status = rng.choice(spec.error_status)
    if status is not None:
        return delivery.failure(conn, status, spec, wire.error, [])
    session = RealtimeSession(conn, model, spec, ids, delivery)
    offered = [p.strip() for p in (request.header(b"sec-websocket-protocol") or b"").split(b",")]
    # As OpenAI does, a browser's `realtime` subprotocol is taken (else the browser fails).
    return session.run(key, b"realtime" if b"realtime" in offered else None)


class RealtimeSession(asyncio.Protocol):
    """One Realtime session: the connection's protocol after the 101."""

    def __init__(
        self,
        conn: HttpConnection,
        model: str,
        spec: FaultSpec,
        ids: itertools.count[int],
        delivery: Delivery,
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.ids = ids
        self.delivery = delivery
        self.reader = MessageReader(lambda opcode, head: True, _MAX_EVENT)
        self.inbox: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.closed = False
        number = next(ids)
        self.conversation_id = f"conv_mock{number:06d}"
        self.session: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": f"sess_mock{number:06d}",
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "expires_at": int(time.time()) + 3600,
            "audio": {
                "input": {
                    "format": dict(_PCM),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": None,
                },
                "output": {"format": dict(_PCM), "voice": "marin", "speed": 1.0},
            },
        }
        # The conversation's items, in order, and the audio bytes of those that hold audio.
        self.items: list[dict[str, Any]] = []
        self.audio: dict[str, int] = {}
        self.buffered = 0  # input_audio_buffer bytes not yet committed
        self.last_input_tokens = 0  # the last response's input: the cached prefix of the next

    # -- the connection ------------------------------------------------------------------------

    async def run(self, key: bytes, protocol: bytes | None = None) -> None:
        if self.spec.latency_ms:
            await asyncio.sleep(self.spec.latency_ms / 1000)
        taken = b"sec-websocket-protocol: %s\r\n" % protocol if protocol else b""
        head = (
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-accept: %s\r\n%s\r\n" % (accept_key(key), taken)
        )
        try:
            early = self.conn.switch_protocols(head, self)
            self._emit(self._event("session.created", session=self.session))
            if early:
                self.data_received(early)
            while not self.closed:
                message = await self.inbox.get()
                if message is None:
                    return
                await self._handle(message[1])
        except ClientGone:
            return
        finally:
            # The session is over: the connection's request is done (so that the end of this
            # task is not taken for a handler that never answered), and the connection closes.
            self.closed = True
            self.conn.tunnel_closed()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            messages = self.reader.feed(data)
        except FrameError:
            self._close(b"\x03\xea")  # 1002: protocol error
            return
        for opcode, payload in messages:
            if opcode == PING:
                self._write(frame(PONG, payload))
            elif opcode == CLOSE:
                self._close(payload[:2])
                return
            elif opcode in (TEXT, BINARY):
                self.inbox.put_nowait((opcode, payload))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.inbox.put_nowait(None)
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()

    def _close(self, code: bytes) -> None:
        """Answer (or send) a close frame, then end the connection once it has gone out."""
        self._write(frame(CLOSE, code))
        self.closed = True
        self.inbox.put_nowait(None)
        self.conn.tunnel_closed()

    def _write(self, data: bytes) -> None:
        transport = self.conn.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _emit(self, event: dict[str, Any]) -> int:
        data = frame(TEXT, orjson.dumps(event))
        self._write(data)
        return len(data)

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": f"event_mock{next(self.ids):06d}", **fields}

    def _error(
        self,
        message: str,
        code: str | None,
        client_event: dict[str, Any] | None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> dict[str, Any]:
        client_id = client_event.get("event_id") if client_event else None
        return self._event(
            "error",
            error={
                "type": kind,
                "code": code,
                "message": message,
                "param": param,
                "event_id": client_id if isinstance(client_id, str) else None,
            },
        )

    # -- client events -------------------------------------------------------------------------

    async def _handle(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            message = f"Failed to parse the client event as JSON: {exc}."
            self._emit(self._error(message, "invalid_json", None))
            return
        if not isinstance(event, dict):
            self._emit(self._error("A client event must be a JSON object.", "invalid_json", None))
            return
        kind = event.get("type")
        if not isinstance(kind, str):
            message = "Missing required parameter: 'type'."
            self._emit(self._error(message, "missing_required_parameter", event, "type"))
            return
        if kind not in _CLIENT_EVENTS:
            supported = ", ".join(f"'{name}'" for name in _CLIENT_EVENTS)
            message = f"Invalid value: '{kind}'. Supported values are: {supported}."
            self._emit(self._error(message, "unknown_event", event, "type"))
            return
        if kind == "response.create":
            await self._respond(event)
            return
        for answer in getattr(self, "_on_" + kind.replace(".", "_"))(event):
            self._emit(answer)

    def _on_session_update(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        changes = event.get("session")
        if not isinstance(changes, dict):
            message = "Invalid type for 'session': expected an object."
            return [self._error(message, "invalid_type", event, "session")]
        kept = {name: self.session[name] for name in ("type", "object", "id", "model")}
        self.session = {**merged(self.session, changes), **kept}
        return [self._event("session.updated", session=self.session)]

    def _on_conversation_item_create(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        item = event.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            message = "Missing required parameter: 'item.type'."
            return [self._error(message, "missing_required_parameter", event, "item.type")]
        item_id = item.get("id") if isinstance(item.get("id"), str) else None
        item = {
            "id": item_id or f"item_mock{next(self.ids):06d}",
            "object": "realtime.item",
            **{k: v for k, v in item.items() if k != "id"},
            "status": "completed",
        }
        if item["type"] == "message" and not isinstance(item.get("content"), list):
            message = "Missing required parameter: 'item.content'."
            return [self._error(message, "missing_required_parameter", event, "item.content")]
        return self._add_item(item)

    def _on_conversation_item_delete(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        item_id = event.get("item_id")
        found = [item for item in self.items if item["id"] == item_id]
        if not found:
            message = f"Item with item_id not found: {item_id}"
            return [self._error(message, "item_delete_invalid_item_id", event, "item_id")]
        self.items.remove(found[0])
        self.audio.pop(found[0]["id"], None)
        return [self._event("conversation.item.deleted", item_id=item_id)]

    def _add_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        if audio_bytes(item):
            self.audio[item["id"]] = audio_bytes(item)
        return [
            self._event("conversation.item.added", previous_item_id=previous, item=item),
            self._event("conversation.item.done", previous_item_id=previous, item=item),
        ]

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        audio = event.get("audio")
        try:
            size = len(base64.b64decode(audio, validate=True)) if isinstance(audio, str) else -1
        except (binascii.Error, ValueError):
            size = -1
        if size < 0:
            message = "Invalid 'audio': expected base64-encoded audio bytes."
            return [self._error(message, "invalid_value", event, "audio")]
        self.buffered += size
        return []

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.buffered:
            message = (
                "Error committing input audio buffer: buffer too small. Expected at least "
                "100ms of audio, but buffer only has 0.00ms of audio."
            )
            return [self._error(message, "input_audio_buffer_commit_empty", event)]
        item_id = f"item_mock{next(self.ids):06d}"
        previous = self.items[-1]["id"] if self.items else None
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        committed = self._event(
            "input_audio_buffer.committed", previous_item_id=previous, item_id=item_id
        )
        answers = [committed, *self._add_item(item)]
        self.audio[item_id], self.buffered = self.buffered, 0
        return answers

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.buffered = 0
        return [self._event("input_audio_buffer.cleared")]

    def _on_response_cancel(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        # Events are handled in turn: no response is ever under way when a cancel is read.
        message = "Cancellation failed: no active response found."
        return [self._error(message, "response_cancel_not_active", event)]

    # -- responses -----------------------------------------------------------------------------

    async def _respond(self, event: dict[str, Any]) -> None:
        params: dict[str, Any] = (
            event["response"] if isinstance(event.get("response"), dict) else {}
        )
        events, item = self._response_events(params)
        rid = events[0]["response"]["id"]
        record = StreamRecord(rid)
        streams = self.delivery.streams
        streams[rid] = record
        while len(streams) > _STREAMS_KEPT:
            streams.popitem(last=False)
        spec = self.spec
        delay = spec.chunk_delay_ms / 1000
        try:
            for i, answer in enumerate(events):
                if spec.stream_error_after is not None and i >= spec.stream_error_after:
                    # The server's report of a failure mid-response; no response.done follows.
                    message = "The server had an error while processing your request (mock)."
                    self._emit(self._error(message, None, None, kind="server_error"))
                    record.state = "errored"
                    return
                if spec.cut_after is not None and i >= spec.cut_after:
                    # Half a frame, then the connection drops: no close frame.
                    data = frame(TEXT, orjson.dumps(answer))
                    self._write(data[: len(data) // 2])
                    record.state = "cut"
                    self.closed = True
                    await asyncio.sleep(0.02)
                    self.conn.abort()
                    return
                if delay and i:
                    await asyncio.sleep(delay)
                if self.closed:
                    record.state = "cancelled"
                    return
                record.bytes_sent += self._emit(answer)
                record.chunks_sent += 1
                await self.conn.drain()
        except (asyncio.CancelledError, ClientGone):
            record.state = "cancelled"
            raise
        record.state = "completed"
        if item is not None:
            self.items.append(item)

    def _response_events(
        self, params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """A response's events in order, and the item it adds to the conversation (None when
        it is out of band, `conversation: "none"`)."""
        session = self.session
        modalities = params.get("output_modalities") or session.get("output_modalities") or []
        audio = "audio" in modalities
        limit = params.get("max_output_tokens", session.get("max_output_tokens"))
        instructions = params.get("instructions", session.get("instructions"))
        in_band = params.get("conversation") != "none"
        user_text = next(
            (
                item_text(item)
                for item in reversed(self.items)
                if item.get("type") == "message" and item.get("role") == "user"
            ),
            "",
        )
        ask = Ask(user_text, max_tokens=limit if isinstance(limit, int) else None)
        reply = plan(ask, self.spec, "")
        words = reply.text.split()
        rid = f"resp_mock{next(self.ids):06d}"
        item_id = f"item_mock{next(self.ids):06d}"
        voice = (session.get("audio") or {}).get("output", {}).get("voice", "marin")
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": rid,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id if in_band else None,
            "output_modalities": ["audio"] if audio else ["text"],
            "max_output_tokens": limit if limit is not None else "inf",
            "audio": {"output": {"format": dict(_PCM), "voice": voice}},
            "usage": None,
            "metadata": params.get("metadata"),
        }
        part_type, content_type, field = (
            ("audio", "output_audio", "transcript") if audio else ("text", "output_text", "text")
        )
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        at = {"response_id": rid, "item_id": item_id, "output_index": 0, "content_index": 0}
        added = {"response_id": rid, "output_index": 0, "item": item}
        previous = self.items[-1]["id"] if self.items else None
        events = [
            self._event("response.created", response=response),
            self._event("response.output_item.added", **added),
        ]
        if in_band:
            events.append(
                self._event("conversation.item.added", previous_item_id=previous, item=item)
            )
        events.append(
            self._event("response.content_part.added", **at, part={"type": part_type, field: ""})
        )
        for piece in wire.split_evenly(words, self.spec.chunks):
            if audio:
                events.append(
                    self._event("response.output_audio_transcript.delta", **at, delta=piece)
                )
                silence = bytes(AUDIO_TOKEN_BYTES * len(piece.split()))
                events.append(
                    self._event(
                        "response.output_audio.delta",
                        **at,
                        delta=base64.b64encode(silence).decode(),
                    )
                )
            else:
                events.append(self._event("response.output_text.delta", **at, delta=piece))
        text = " ".join(words)
        if audio:
            events.append(self._event("response.output_audio.done", **at))
            events.append(
                self._event("response.output_audio_transcript.done", **at, transcript=text)
            )
        else:
            events.append(self._event("response.output_text.done", **at, text=text))
        part = {"type": part_type, field: text}
        events.append(self._event("response.content_part.done", **at, part=part))
        done_item = {
            **item,
            "status": "completed",
            "content": [{"type": content_type, field: text}],
        }
        events.append(self._event("response.output_item.done", **{**added, "item": done_item}))
        if in_band:
            events.append(
                self._event("conversation.item.done", previous_item_id=previous, item=done_item)
            )
        usage = self._usage(instructions, len(words), audio)
        finished = {**response, "output": [done_item], "usage": usage, "status": "completed"}
        if reply.finish == "length":
            finished["status"] = "incomplete"
            finished["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
        events.append(self._event("response.done", response=finished))
        self.last_input_tokens = usage["input_tokens"]
        return events, (done_item if in_band else None)

    def _usage(self, instructions: Any, words: int, audio: bool) -> dict[str, Any]:
        """Input: the instructions' and the conversation's text (about four characters a
        token) and its audio (a token per 100 ms); the previous response's input counts as
        cached. Output: a text token per word, and with audio as many audio tokens."""
        text_in = wire.count_tokens(instructions if isinstance(instructions, str) else "")
        text_in += sum(wire.count_tokens(item_text(item)) for item in self.items)
        audio_in = sum(math.ceil(size / AUDIO_TOKEN_BYTES) for size in self.audio.values())
        input_tokens = text_in + audio_in
        audio_out = words if audio else 0
        output_tokens = words + audio_out
        return {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "cached_tokens": min(self.last_input_tokens, input_tokens),
                "text_tokens": text_in,
                "audio_tokens": audio_in,
            },
            "output_token_details": {"text_tokens": words, "audio_tokens": audio_out},
        }
