"""OpenAI's Realtime API (a WebSocket session at /v1/realtime): what the gateway reads of it.

The session's bytes are relayed untouched both ways. The gateway reads the provider's side only
to meter the session: each `response.done` event carries that response's usage, summed here
into the session's canonical usage (text and audio tokens in and out, cached input). Nothing
else is parsed: audio deltas and the other events pass by as frames counted, not read.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from tollway.llm.media_apis import MediaApi
from tollway.llm.websocket import CLOSE, TEXT, FrameError, MessageReader

log = logging.getLogger("tollway.proxy")


class RealtimeApi(MediaApi):
    """Errors in OpenAI's format; the session itself is relayed (proxy/handlers/realtime.py)."""

    name = "openai.realtime"
    operation = "realtime"
    endpoint = "/realtime"


OPENAI_REALTIME = RealtimeApi()


def _usage_event(opcode: int, head: bytes) -> bool:
    # The event's type is its first key in what providers send; allow a little room before it.
    return opcode == CLOSE or (opcode == TEXT and b'"response.done"' in head[:200])


class SessionUsage:
    """Sums the usage of a session's responses, from the provider's frames as they pass."""

    __slots__ = ("_reader", "closed", "responses", "tokens")

    def __init__(self) -> None:
        self._reader: MessageReader | None = MessageReader(_usage_event)
        self.responses = 0
        # Whether the provider closed the session with a close frame (a clean end).
        self.closed = False
        # input, output, cached input, audio input, audio output
        self.tokens = [0, 0, 0, 0, 0]

    def feed(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            return
        try:
            messages = reader.feed(data)
        except FrameError as exc:
            # Metering stops; the relay goes on (the client judges the framing, not us).
            log.warning("a realtime session's frames could not be read: %s", exc)
            self._reader = None
            return
        for opcode, payload in messages:
            if opcode == CLOSE:
                self.closed = True
            else:
                self._response_done(payload)

    def _response_done(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        response = event.get("response") if isinstance(event, dict) else None
        usage = response.get("usage") if isinstance(response, dict) else None
        if not isinstance(usage, dict):
            return
        self.responses += 1
        into = _details(usage, "input_token_details")
        out = _details(usage, "output_token_details")
        for i, value in enumerate(
            (
                usage.get("input_tokens"),
                usage.get("output_tokens"),
                into.get("cached_tokens"),
                into.get("audio_tokens"),
                out.get("audio_tokens"),
            )
        ):
            if isinstance(value, int):
                self.tokens[i] += value

    @property
    def usage(self) -> dict[str, Any] | None:
        """The session's canonical usage (None when no response reported any)."""
        if not self.responses:
            return None
        prompt, completion, cached, audio_in, audio_out = self.tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio_in},
            "completion_tokens_details": {"audio_tokens": audio_out},
        }


def _details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    found = usage.get(key)
    return found if isinstance(found, dict) else {}
