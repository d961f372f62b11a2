"""What a policy is: a named step with a typed configuration (policies/config.py) and up to
five phases.

A policy takes part in the phases it overrides; the pipeline (policies/pipeline.py) finds them
once, when the snapshot is compiled, so a phase no policy uses costs nothing per request.

Phases, in the order a call meets them:

- `on_request(ctx)`: the request head is in, the body is not parsed (authentication).
- `on_body(ctx)`: the body is parsed and `ctx.model` is known (model allowlists, limits).
- `on_response(ctx)`: the upstream's answer head is in (`ctx.status`), nothing sent yet.
- `on_chunk(ctx, data)`: each piece of a stream on its way to the client; returns the bytes to
  send (the same bytes to only observe them).
- `on_done(ctx)`: after the answer has gone out (or the call ended any other way), with
  `ctx.outcome`, `ctx.usage` and the timings: accounting and records. It never delays the
  client and cannot change the answer.

The first three return `None` to continue, or a verdict that answers the call at once: a
`GatewayError` (written in the client's own API format) or an `Answer` (written as it is).
The request and body phases may also return `Pending`: the verdict is on its way (a counter
shared across nodes answers within the event loop's next turns); the pipeline waits for it,
then goes on with the phase's later policies.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from tollway.errors import GatewayError

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete response a policy answers with (a cached body, say)."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


Verdict = GatewayError | Answer | None


class Pending:
    """A verdict still to come: awaiting `waiter` gives it."""

    __slots__ = ("waiter",)

    def __init__(self, waiter: Awaitable[Verdict]) -> None:
        self.waiter = waiter


# What the request and body phases return: a verdict, or one still to come.
Step = Verdict | Pending


class Policy:
    """Base class of every policy. Subclasses set `name` and override their phases."""

    name: ClassVar[str] = ""

    def on_request(self, ctx: RequestContext) -> Step:
        return None

    def on_body(self, ctx: RequestContext) -> Step:
        return None

    def on_response(self, ctx: RequestContext) -> Verdict:
        return None

    def on_chunk(self, ctx: RequestContext, data: bytes) -> bytes:
        return data

    def on_done(self, ctx: RequestContext) -> None:
        return None

    def takes_part_in(self, phase: str) -> bool:
        """Whether this policy overrides `phase` (an `on_...` method name)."""
        return getattr(type(self), phase) is not getattr(Policy, phase)
