"""What the mock's realtime sessions read of a conversation's items and session updates."""

from __future__ import annotations

from typing import Any


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied, objects merged key by key."""
    out = dict(base)
    for name, value in changes.items():
        old = out.get(name)
        if isinstance(old, dict) and isinstance(value, dict):
            out[name] = merged(old, value)
        else:
            out[name] = value
    return out


def item_text(item: dict[str, Any]) -> str:
    """The text an item carries: its parts' text and transcripts, a function call's
    arguments or output."""
    parts: list[str] = []
    for part in item.get("content") or []:
        if isinstance(part, dict):
            for name in ("text", "transcript"):
                if isinstance(part.get(name), str):
                    parts.append(part[name])
    for name in ("arguments", "output"):
        if isinstance(item.get(name), str):
            parts.append(item[name])
    return " ".join(parts)


def audio_bytes(item: dict[str, Any]) -> int:
    """The bytes of audio an item's parts carry (their base64 decoded length)."""
    total = 0
    for part in item.get("content") or []:
        if isinstance(part, dict) and isinstance(part.get("audio"), str):
            total += len(part["audio"]) * 3 // 4 - part["audio"][-2:].count("=")
    return total
