"""Fitting a kept conversation by turns: whole turns left out oldest first, the first turns
asked for and the latest always kept, a latest turn too long refused."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import pytest

from tollway.errors import GatewayError
from tollway.llm.context_fit import ContextFit, fit, turns


def user(n: int, words: int = 10) -> dict[str, Any]:
    return {"id": f"u{n}", "type": "message", "role": "user", "content": "w " * words}


def answer(n: int) -> dict[str, Any]:
    return {"id": f"a{n}", "type": "message", "role": "assistant", "content": "ok"}


def call(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"c{n}",
            "type": "function_call",
            "call_id": f"k{n}",
            "name": "f",
            "arguments": "{}",
        },
        {"id": f"o{n}", "type": "function_call_output", "call_id": f"k{n}", "output": "r"},
    ]


def words(request: Mapping[str, Any]) -> int:
    """A counter that counts words in message text (and 1 a tool call or result)."""
    total = 0
    for message in request["messages"]:
        content = message.get("content")
        total += len(content.split()) if isinstance(content, str) else 0
        total += len(message.get("tool_calls") or [])
        total += 1 if message["role"] == "tool" else 0
    return total


CONVERSATION = [user(0), answer(0), user(1), *call(1), answer(1), user(2), answer(2), user(3)]


def test_turns_start_at_user_messages() -> None:
    assert [[i["id"] for i in t] for t in turns(CONVERSATION)] == [
        ["u0", "a0"],
        ["u1", "c1", "o1", "a1"],
        ["u2", "a2"],
        ["u3"],
    ]


def test_what_fits_is_sent_whole() -> None:
    fitted = fit(CONVERSATION, ContextFit(1000), words)
    assert fitted.items == CONVERSATION and fitted.omitted == []
    assert fit(CONVERSATION, ContextFit(None), words).items == CONVERSATION


def test_older_turns_go_first_whole_and_the_first_may_be_kept() -> None:
    # Turns: 11, 14 (10 words, a call, its result, "ok"), 11, 10 words.
    fitted = fit(CONVERSATION, ContextFit(25), words)
    assert [i["id"] for i in fitted.items] == ["u2", "a2", "u3"]
    assert fitted.omitted == ["u0", "a0", "u1", "c1", "o1", "a1"]
    assert fitted.tokens == 21
    assert fitted.full == 46
    # 11 over a budget of 35, in chunks of 8: 16 to free, two turns (25 tokens).
    kept_first = fit(CONVERSATION, ContextFit(35, keep_first_turns=1), words)
    assert [i["id"] for i in kept_first.items] == ["u0", "a0", "u3"]
    assert kept_first.omitted == ["u1", "c1", "o1", "a1", "u2", "a2"]


def test_a_latest_turn_too_long_is_refused() -> None:
    with pytest.raises(GatewayError) as info:
        fit([user(0), answer(0), user(1, words=50)], ContextFit(20), words)
    assert (info.value.status, info.value.code) == (400, "context_length_exceeded")


def test_room_is_left_for_a_summary_where_the_turns_were() -> None:
    setting = ContextFit(45, keep_first_turns=1, summary_model="mini", summary_tokens=10)
    fitted = fit(CONVERSATION, setting, words)
    # 35 tokens for the turns: as above, the two middle turns go; the summary goes there.
    assert [[i["id"] for i in turn] for turn in fitted.dropped] == [
        ["u1", "c1", "o1", "a1"],
        ["u2", "a2"],
    ]
    assert fitted.gap_at == 2 and fitted.items[fitted.gap_at]["id"] == "u3"


def test_pinned_turns_stay() -> None:
    pinned = [
        user(0),
        answer(0),
        {**user(1), "pinned": True},
        answer(1),
        user(2),
        answer(2),
        user(3),
    ]
    fitted = fit(pinned, ContextFit(30), words)
    assert [i["id"] for i in fitted.items] == ["u1", "a1", "u3"]
    assert fitted.gap_at == 0


def test_what_is_sent_stays_the_same_while_the_conversation_grows_by_a_chunk() -> None:
    """The dropped turns change only when the conversation has grown by a chunk (a quarter
    of the budget): the prefix sent, and its summary, stay byte-stable meanwhile."""
    history: list[dict[str, Any]] = []
    prefixes = []
    for n in range(40):
        history += [user(n, words=5), answer(n)]
        fitted = fit(history, ContextFit(100), words)
        assert fitted.tokens <= 100
        prefixes.append(tuple(fitted.omitted))
    changes = sum(1 for a, b in pairwise(prefixes) if a != b)
    # Each turn is 6 tokens; the chunk is 25: the dropped set changes every ~4 turns, not
    # every turn.
    assert 0 < changes <= 40 // 4 + 1


def test_the_most_relevant_turns_can_be_kept_instead_of_the_most_recent() -> None:
    def said(n: int, text: str) -> dict[str, Any]:
        return {"id": f"u{n}", "type": "message", "role": "user", "content": text}

    history = [
        said(0, "set up the project"),
        answer(0),
        said(1, "the database password rotates every tuesday"),
        answer(1),
        said(2, "lunch plans for friday"),
        answer(2),
        said(3, "weather is nice today"),
        answer(3),
        said(4, "when does the database password rotate"),
    ]
    relevant = fit(history, ContextFit(20, keep_first_turns=1, select="relevant"), words)
    assert [i["id"] for i in relevant.items] == ["u0", "a0", "u1", "a1", "u4"]
    recent = fit(history, ContextFit(20, keep_first_turns=1), words)
    assert "u1" not in [i["id"] for i in recent.items]
