"""Usage as native providers report it: in a whole answer's top-level `usage`, or in a
stream's events, read event by event as they are relayed (only the events that mention usage
are parsed)."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from tollway.llm import usage


def top_level_usage(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = parsed.get("usage") if isinstance(parsed, dict) else None
    return found if isinstance(found, dict) else None


def _events_with_usage(events: bytes) -> list[dict[str, Any]]:
    """The JSON data of the events in `events` that mention usage (most events do not, and
    are not parsed)."""
    if b'"usage"' not in events:
        return []
    found = []
    for event in events.split(b"\n\n"):
        if b'"usage"' not in event:
            continue
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                try:
                    data = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    found.append(data)
    return found


class UsageWatcher(Protocol):
    usage: dict[str, Any] | None
    # The answer's own id, where the gateway keeps whose it is (a Responses API response).
    answer_id: str | None

    def feed(self, events: bytes) -> None:
        """Whole events, as relayed to the client."""
        ...

    def take(self, events: bytes) -> bytes:
        """Whole events; returns them without the usage the client did not ask for."""
        ...


class ChunkUsage:
    """OpenAI's chat and completion streams: the usage chunk (when the call asked for one)."""

    __slots__ = ("answer_id", "usage")

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.answer_id: str | None = None

    def feed(self, events: bytes) -> None:
        for data in _events_with_usage(events):
            if isinstance(data.get("usage"), dict):
                self.usage = data["usage"]

    def take(self, events: bytes) -> bytes:
        """Read the usage chunk the gateway asked for on the client's behalf, and keep it
        from the client, which did not ask for it (`stream_options.include_usage`)."""
        if b'"usage"' not in events:
            return events
        kept = []
        for event in events.split(b"\n\n"):
            if b'"usage"' in event and b'"choices":[]' in event.replace(b" ", b""):
                self.feed(event + b"\n\n")
                continue
            kept.append(event)
        return b"\n\n".join(kept)


class ResponsesUsage(ChunkUsage):
    """The Responses API's stream: the usage of `response.completed` (or incomplete)."""

    __slots__ = ()

    def take(self, events: bytes) -> bytes:
        self.feed(events)
        return events

    def feed(self, events: bytes) -> None:
        for data in _events_with_usage(events):
            response = data.get("response") or {}
            answer_id = response.get("id")
            if self.answer_id is None and isinstance(answer_id, str):
                self.answer_id = answer_id  # response.created names it (with usage: null)
            reported = response.get("usage")
            if isinstance(reported, dict):
                self.usage = usage.from_responses(reported)


class AnthropicUsage(ChunkUsage):
    """Anthropic's stream: input counts in `message_start`, output in `message_delta`."""

    __slots__ = ("_reported",)

    def __init__(self) -> None:
        super().__init__()
        self._reported: dict[str, Any] = {}

    def take(self, events: bytes) -> bytes:
        self.feed(events)
        return events

    def feed(self, events: bytes) -> None:
        for data in _events_with_usage(events):
            reported = data.get("usage") or (data.get("message") or {}).get("usage")
            if isinstance(reported, dict):
                self._reported.update({k: v for k, v in reported.items() if v is not None})
                self.usage = usage.from_anthropic(self._reported)
