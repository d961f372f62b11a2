"""Which counters a call takes from: rules by scope (key, app, team, service, model), each
applying to the names its `match` globs select (every name when it has none).

For each scope, the first rule that matches a call's name applies (like a route table: put
specific rules before general ones), and each name gets counters of its own: a rule for every
key gives every key its own limit. Counters are named by scope and the thing's stable id (a
key's id, an app's, a team's...), never by the rule, so reordering or retuning rules keeps the
counts; a budget's counter also names its period.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext

SCOPES = ("key", "app", "team", "service", "model")


def compile_globs(patterns: Sequence[str] | None) -> re.Pattern[str] | None:
    """One pattern for a rule's globs (fnmatch's meaning, case-sensitive); None for all."""
    if patterns is None:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass(frozen=True, slots=True)
class Subject:
    """Who or what a call is counted against in one scope: a stable id for counter names,
    and the name shown in messages and matched by globs."""

    scope: str
    id: str
    name: str


def subject(ctx: RequestContext, scope: str) -> Subject | None:
    """The call's subject in `scope`, or None when it has none (a file key has no app)."""
    if scope == "key":
        key = ctx.key
        if key is None:
            return None
        if key.app is not None:
            return Subject("key", f"{key.key_id}", key.name)
        return Subject("key", f"file:{key.name}", key.name)
    if scope == "app" or scope == "team":
        key = ctx.key
        app = key.app if key is not None else None
        if app is None:
            return None
        if scope == "app":
            return Subject("app", f"{app.id}", app.name)
        return Subject("team", f"{app.team_id}", app.team)
    if scope == "service":
        service = ctx.service
        if service is None:
            return None
        return Subject("service", f"{service.id}", service.name)
    model = ctx.model
    if model is None:
        return None
    return Subject("model", model, model)


@dataclass(frozen=True, slots=True)
class RateRule:
    scope: str
    pattern: re.Pattern[str] | None
    requests_per_minute: int | None = None
    burst: int | None = None
    tokens_per_minute: int | None = None
    token_burst: int | None = None
    concurrent: int | None = None

    def matches(self, name: str) -> bool:
        return self.pattern is None or self.pattern.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class BudgetRule:
    scope: str
    pattern: re.Pattern[str] | None
    amount_usd: float
    period: str
    # Fractions of the amount at which an alert is sent (each once per period).
    alerts: tuple[float, ...] = ()

    def matches(self, name: str) -> bool:
        return self.pattern is None or self.pattern.fullmatch(name) is not None


R = TypeVar("R", RateRule, BudgetRule)


def first_match(rules: Sequence[R], name: str) -> R | None:
    for rule in rules:
        if rule.matches(name):
            return rule
    return None
