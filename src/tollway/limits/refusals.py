"""How limits answer: a 429 (or a 503 when a budget cannot be checked) with `Retry-After`,
`retry-after-ms` (read by OpenAI's SDKs) and OpenAI's `x-ratelimit-*` headers, written in
the client API's error format by the route's ClientApi."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tollway.errors import GatewayError
from tollway.limits.counters import Demand, Outcome

if TYPE_CHECKING:
    from tollway.limits.rules import BudgetRule, Subject


@dataclass(slots=True)
class Part:
    """What one demand is for: the policy that owns it, the kind of limit, whose it is, the
    limit as configured, and the counter's size and drain rate (a second)."""

    policy: str
    kind: str  # requests, tokens, concurrent, budget
    subject: Subject
    limit: float
    size: float
    rate: float
    budget: BudgetRule | None = field(default=None)
    # The constant x-ratelimit-limit-* header of a requests or tokens bucket, and the names
    # of its remaining and reset headers, made once (they go on every admitted call).
    limit_header: tuple[bytes, bytes] = field(init=False)
    remaining_name: bytes = field(init=False)
    reset_name: bytes = field(init=False)

    def __post_init__(self) -> None:
        unit = self.kind.encode()
        self.limit_header = (b"x-ratelimit-limit-" + unit, b"%d" % self.limit)
        self.remaining_name = b"x-ratelimit-remaining-" + unit
        self.reset_name = b"x-ratelimit-reset-" + unit


def duration(seconds: float) -> str:
    """OpenAI's reset format: 20ms, 1.5s, 6m0s."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 59.9:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _reset(seconds: float) -> bytes:
    """`duration` as a header value; under a second (a bucket with room, the common case on
    every admitted call) without building a string first."""
    if seconds < 1.0:
        return b"%dms" % max(0, math.ceil(seconds * 1000))
    return duration(seconds).encode()


def _bucket_headers(part: Part, used: float) -> list[tuple[bytes, bytes]]:
    unit = part.kind.encode()
    remaining = max(0, math.floor(part.size - used))
    reset = used / part.rate if part.rate > 0 else 0.0
    return [
        (b"x-ratelimit-limit-" + unit, b"%d" % part.limit),
        (b"x-ratelimit-remaining-" + unit, b"%d" % remaining),
        (b"x-ratelimit-reset-" + unit, _reset(reset)),
    ]


def _retry(seconds: float) -> list[tuple[bytes, bytes]]:
    seconds = max(seconds, 0.001)
    return [
        (b"retry-after", b"%d" % max(1, math.ceil(seconds))),
        (b"retry-after-ms", b"%d" % math.ceil(seconds * 1000)),
    ]


def refusal(part: Part, outcome: Outcome, demand: Demand) -> GatewayError:
    who = part.subject
    named = f"{who.scope} `{who.name}`"
    wait = outcome.retry_after
    if part.kind == "budget":
        if outcome.fallback:
            return GatewayError(
                503,
                f"The budget of {named} cannot be checked right now (its counters are "
                "unavailable), so no call is started. Try again shortly.",
                code="budget_unavailable",
                headers=tuple(_retry(1.0)),
            )
        rule = part.budget
        period = rule.period if rule is not None else "period"
        return GatewayError(
            429,
            f"The {period}ly budget of {named} (${part.limit:g}) is spent. Calls resume when "
            "the period ends.",
            code="budget_exceeded",
            type="insufficient_quota",
            headers=tuple(_retry(wait)),
        )
    if part.kind == "concurrent":
        return GatewayError(
            429,
            f"Too many concurrent requests for {named}: at most {part.limit:g} at a time. "
            "Retry when one of them has finished.",
            code="concurrency_limit_exceeded",
            headers=tuple(_retry(wait or 1.0)),
        )
    failed = outcome.failed
    used = outcome.used[failed] if 0 <= failed < len(outcome.used) else part.size
    headers = _retry(wait) + _bucket_headers(part, used)
    if part.kind == "tokens":
        message = (
            f"Rate limit reached for tokens: {part.limit:g} per minute for {named}. This call "
            f"needs about {demand[2]:g}. Retry after {duration(wait)}."
        )
    else:
        message = (
            f"Rate limit reached for requests: {part.limit:g} per minute for {named}. "
            f"Retry after {duration(wait)}."
        )
    return GatewayError(429, message, code="rate_limit_exceeded", headers=tuple(headers))


def success_headers(parts: list[Part], outcome: Outcome) -> tuple[tuple[bytes, bytes], ...]:
    """The `x-ratelimit-*` state of an admitted call: for requests and for tokens, the
    counter with the least room left. On every admitted call's path: kept to a few
    operations per counter."""
    requests: Part | None = None
    tokens: Part | None = None
    requests_room = tokens_room = 2.0
    requests_used = tokens_used = 0.0
    # As far as both lists go, indexed: zip's `strict` keyword costs a keyword dict a call.
    all_used = outcome.used
    for i in range(min(len(parts), len(all_used))):
        part = parts[i]
        used = all_used[i]
        kind = part.kind
        if kind == "requests":
            room = (part.size - used) / part.size
            if room < requests_room:
                requests, requests_room, requests_used = part, room, used
        elif kind == "tokens":
            room = (part.size - used) / part.size
            if room < tokens_room:
                tokens, tokens_room, tokens_used = part, room, used
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if requests is not None:
        headers = _state(requests, requests_used)
    if tokens is not None:
        headers += _state(tokens, tokens_used)
    return headers


# Header values by number, each formatted once: an admitted call's remaining and reset
# numbers repeat from call to call (a bucket with room reads much the same level each time),
# and formatting bytes costs several times a dict lookup. Bounded: cleared when full.
_COUNTS: dict[int, bytes] = {}
_MILLIS: dict[int, bytes] = {}
_CACHED = 4096
_ceil = math.ceil


def _state(part: Part, used: float) -> tuple[tuple[bytes, bytes], ...]:
    remaining = part.size - used
    # What b"%d" writes of a float: its integer part.
    count = int(remaining) if remaining > 0 else 0
    # Subscripted, not .get(): compiled, a subscript is a fraction of a method call.
    try:
        remaining_value = _COUNTS[count]
    except KeyError:
        if len(_COUNTS) >= _CACHED:
            _COUNTS.clear()
        remaining_value = _COUNTS[count] = b"%d" % count
    rate = part.rate
    reset = used / rate if rate > 0 else 0.0
    if reset < 1.0:
        # `_reset`'s common case: a bucket with room resets within a second.
        ms = _ceil(reset * 1000)
        if ms < 0:
            ms = 0
        try:
            reset_value = _MILLIS[ms]
        except KeyError:
            if len(_MILLIS) >= _CACHED:
                _MILLIS.clear()
            reset_value = _MILLIS[ms] = b"%dms" % ms
    else:
        reset_value = _reset(reset)
    return (
        part.limit_header,
        (part.remaining_name, remaining_value),
        (part.reset_name, reset_value),
    )
