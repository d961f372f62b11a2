"""Token usage in the canonical shape (OpenAI's: prompt_tokens, completion_tokens,
prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens, and
cache_creation_input_tokens), from each API's own way of reporting it."""

from __future__ import annotations

from typing import Any


def usage_with_cache(fresh: int, completion: int, read: int, written: int) -> dict[str, Any]:
    """Canonical usage from APIs that count cache reads and writes apart from the other input
    (Anthropic, Bedrock): prompt_tokens is all input, cached_tokens the reads."""
    prompt = fresh + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_creation_input_tokens": written,
    }


def from_anthropic(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's usage (input_tokens exclude cache reads and writes; thinking tokens, a
    part of output_tokens, in `output_tokens_details` when reported)."""
    out = usage_with_cache(
        usage.get("input_tokens") or 0,
        usage.get("output_tokens") or 0,
        usage.get("cache_read_input_tokens") or 0,
        usage.get("cache_creation_input_tokens") or 0,
    )
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if isinstance(thinking, int):
        out["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return out


def from_responses(usage: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's usage (input_tokens include cached ones)."""
    prompt = usage.get("input_tokens") or 0
    completion = usage.get("output_tokens") or 0
    details = usage.get("input_tokens_details") or {}
    out = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens") or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0},
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            or 0
        },
    }
    if details.get("cache_write_tokens"):
        out["cache_creation_input_tokens"] = details["cache_write_tokens"]
    return out
