"""Builders of the canonical form (OpenAI Chat Completions JSON, see tollway.llm): messages,
tool calls, choices, completions and stream chunks, shared by every provider adapter and client
API so that each writes the canonical shape the same way."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from tollway.errors import GatewayError


def tool_call(call_id: str | None, name: str | None, arguments: Any) -> dict[str, Any]:
    """A canonical tool call; `arguments` is the provider's object (serialised here)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments or {}).decode()},
    }


def call_arguments(call: Mapping[str, Any], where: str) -> Any:
    """A canonical tool call's arguments as the object providers take; a 400 if not JSON."""
    try:
        return orjson.loads((call.get("function") or {}).get("arguments") or "{}")
    except orjson.JSONDecodeError:
        raise GatewayError(
            400, f"{where}.tool_calls: arguments must be JSON.", param=where
        ) from None


def assistant_message(
    text: str,
    calls: list[dict[str, Any]],
    reasoning: str = "",
    thinking_blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The canonical assistant message: content is null only when the turn is all tool
    calls; reasoning and thinking blocks ride along for the next turn (see tollway.llm)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning or thinking_blocks:
        message["reasoning_content"] = reasoning
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    return message


def choice(message: dict[str, Any], finish: str | None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def completion(
    cid: str, model: str, choices: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    """The canonical chat.completion envelope."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def tool_result(message: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A tool message's text, and that text as a JSON object when it is one (providers that
    take structured results get the object)."""
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(part.get("text", "") for part in content or [])
    )
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return text, parsed if isinstance(parsed, dict) else None


def add_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str) -> None:
    """Append a turn, merged into the previous one of the same role: these APIs want turns to
    alternate (consecutive tool results, in particular, form one turn)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


class CanonicalStream:
    """What every stream translator shares: the chunk envelope and the closing pair (the
    final chunk with its finish reason, then the usage chunk with no choices)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self._usage: dict[str, Any] | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The canonical usage, once the provider has reported it."""
        return self._usage

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def closing(self, finish: str, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [
            self.chunk({}, finish),
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            },
        ]
