"""Fitting a conversation the gateway keeps to a model's input budget, by turns.

A turn is a user message and what follows it up to the next one (the model's reasoning, its
tool calls and their results, its answer): turns are kept or left out whole, so that a tool
call never loses its result, nor a result its call. The conversation's first
`keep_first_turns` (the task it was given, say), every turn with a pinned item (an item
with `"pinned": true`) and its latest turn are always kept; the turns between are left out
oldest first until the rest fits, in chunks (see `fit`). Instructions are not items:
they are always sent. Counting is by the model's tokenizer where OpenAI names one, else the
documented approximation (llm/tokens.py); each turn is counted alone, so the total is a
slight overcount (each count includes a conversation's fixed overhead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm.responses_request import to_chat_request


@dataclass(frozen=True, slots=True)
class ContextFit:
    """A model's input budget for kept conversations (None: no fitting), how many of a
    conversation's first turns are always kept, and the model (a public name) that
    summarises the turns left out, with the room its summary takes in the budget."""

    max_input_tokens: int | None = None
    keep_first_turns: int = 0
    summary_model: str | None = None
    summary_tokens: int = 1024
    # Which earlier turns are kept: the most recent ("recent") or the most relevant to the
    # latest turn ("relevant").
    select: str = "recent"


@dataclass(slots=True)
class Fitted:
    items: list[dict[str, Any]]
    tokens: int
    omitted: list[str] = field(default_factory=list)  # ids of the items left out
    # The turns left out, in order, and where in `items` they were (a summary goes there).
    dropped: list[list[dict[str, Any]]] = field(default_factory=list)
    gap_at: int = 0
    # What the whole conversation counts: the saving is full - tokens.
    full: int = 0


def turns(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for item in items:
        starts = item.get("type", "message") == "message" and item.get("role") == "user"
        if starts or not out:
            out.append([])
        out[-1].append(item)
    return out


def count_turn(turn: list[dict[str, Any]], count: Callable[[Mapping[str, Any]], int]) -> int:
    try:
        return count(to_chat_request({"input": turn}))
    except GatewayError:  # a turn of instructions alone, say: not a request of its own
        return len(orjson.dumps(turn)) // 4 + 1


def fit(
    items: list[dict[str, Any]],
    setting: ContextFit,
    count: Callable[[Mapping[str, Any]], int],
) -> Fitted:
    """The items to send: all of them when they fit, else as described above; a latest turn
    that does not fit even alone (with the turns always kept) is refused (400
    context_length_exceeded)."""
    budget = setting.max_input_tokens
    if budget is not None and setting.summary_model is not None:
        budget = max(1, budget - setting.summary_tokens)  # room for the summary
    groups = turns(items)
    sizes = [count_turn(group, count) for group in groups]
    full = total = sum(sizes)
    if budget is None or total <= budget:
        return Fitted(items, total, full=full)
    last = len(groups) - 1
    first = min(setting.keep_first_turns, last)
    pinned = {i for i, group in enumerate(groups) if any(item.get("pinned") for item in group)}
    # Turns go in chunks of a quarter of the budget: what is sent (and its summary) then stays
    # the same, byte for byte, while the conversation grows by that much, so that a
    # provider's prompt cache keeps serving its prefix, and no summary is made again.
    chunk = max(1, budget // 4)
    excess = total - budget
    needed = -(-excess // chunk) * chunk
    dropped: list[int] = []
    freed = 0
    for index in range(first, last):
        if freed >= needed:
            break
        if index in pinned:
            continue
        dropped.append(index)
        freed += sizes[index]
    total -= freed
    if total > budget:
        raise GatewayError(
            400,
            f"The conversation does not fit this model's input budget of {budget} tokens even "
            f"with its earlier turns left out ({total} tokens remain).",
            code="context_length_exceeded",
            param="input",
        )
    if setting.select == "relevant":
        dropped = _least_relevant(groups, sizes, first, last, pinned, total + freed - budget)
        total = sum(size for i, size in enumerate(sizes) if i not in set(dropped))
    gone = set(dropped)
    kept = [item for i, group in enumerate(groups) if i not in gone for item in group]
    omitted = [str(item.get("id")) for i in dropped for item in groups[i] if item.get("id")]
    gap_at = sum(len(group) for i, group in enumerate(groups[: dropped[0]]) if i not in gone)
    return Fitted(kept, total, omitted, [groups[i] for i in dropped], gap_at, full)


_WORD = re.compile(r"\w+")


def _words(turn: list[dict[str, Any]]) -> set[str]:
    text = orjson.dumps(
        [item.get("content") or item.get("arguments") or item.get("output") for item in turn]
    ).decode()
    return {word.lower() for word in _WORD.findall(text) if len(word) > 2}


def _least_relevant(
    groups: list[list[dict[str, Any]]],
    sizes: list[int],
    first: int,
    last: int,
    pinned: set[int],
    excess: int,
) -> list[int]:
    """The earlier turns to leave out when the most relevant ones are kept: each scored by
    the words it shares with the latest turn, rarer words counting more (idf), the more
    recent first among equals; the lowest are left out until `excess` tokens are freed."""
    candidates = [i for i in range(first, last) if i not in pinned]
    vocabulary = [_words(groups[i]) for i in range(len(groups))]
    query = vocabulary[last]
    count = len(groups)
    frequency: dict[str, int] = {}
    for words in vocabulary:
        for word in words:
            frequency[word] = frequency.get(word, 0) + 1

    def score(index: int) -> tuple[float, int]:
        shared = query & vocabulary[index]
        return sum(math.log(1 + count / frequency[w]) for w in shared), index

    dropped: list[int] = []
    freed = 0
    for index in sorted(candidates, key=score):
        if freed >= excess:
            break
        dropped.append(index)
        freed += sizes[index]
    return sorted(dropped)
