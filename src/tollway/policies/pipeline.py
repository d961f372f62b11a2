"""The policy pipeline: named steps in an explicit order, with phases (see policies/base.py).

Built once per route when a snapshot is compiled, never per request. Each phase keeps only the
policies that take part in it, so an unused phase is an empty loop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tollway.policies.base import Pending, Policy, Step, Verdict

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext

log = logging.getLogger("tollway.policies")


class Pipeline:
    __slots__ = (
        "body_phase",
        "chunk_phase",
        "done_phase",
        "policies",
        "request_phase",
        "response_phase",
    )

    def __init__(self, policies: tuple[Policy, ...]) -> None:
        self.policies = policies
        self.request_phase = tuple(p for p in policies if p.takes_part_in("on_request"))
        self.body_phase = tuple(p for p in policies if p.takes_part_in("on_body"))
        self.response_phase = tuple(p for p in policies if p.takes_part_in("on_response"))
        self.chunk_phase = tuple(p for p in policies if p.takes_part_in("on_chunk"))
        self.done_phase = tuple(p for p in policies if p.takes_part_in("on_done"))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def request(self, ctx: RequestContext) -> Step:
        for policy in self.request_phase:
            verdict = policy.on_request(ctx)
            if verdict is not None:
                if verdict.__class__ is Pending:
                    return Pending(self._rest(ctx, self.request_phase, policy, verdict))
                ctx.refused_by = policy.name
                return verdict
        return None

    def body(self, ctx: RequestContext) -> Step:
        for policy in self.body_phase:
            verdict = policy.on_body(ctx)
            if verdict is not None:
                if verdict.__class__ is Pending:
                    return Pending(self._rest(ctx, self.body_phase, policy, verdict))
                ctx.refused_by = policy.name
                return verdict
        return None

    async def _rest(
        self, ctx: RequestContext, phase: tuple[Policy, ...], waiting: Policy, step: Step
    ) -> Verdict:
        """The rest of a phase once a policy's pending verdict has come: that verdict, then
        the later policies' (waiting again for any of them that must)."""
        request_phase = phase is self.request_phase
        later = phase[phase.index(waiting) + 1 :]
        policy = waiting
        while True:
            while isinstance(step, Pending):
                step = await step.waiter
            if step is not None:
                ctx.refused_by = policy.name
                return step
            if not later:
                return None
            policy, later = later[0], later[1:]
            step = policy.on_request(ctx) if request_phase else policy.on_body(ctx)

    def response(self, ctx: RequestContext) -> Verdict:
        for policy in self.response_phase:
            verdict = policy.on_response(ctx)
            if verdict is not None:
                ctx.refused_by = policy.name
                return verdict
        return None

    def chunk(self, ctx: RequestContext, data: bytes) -> bytes:
        for policy in self.chunk_phase:
            data = policy.on_chunk(ctx, data)
        return data

    def done(self, ctx: RequestContext) -> None:
        """Run every done phase, whatever each one does: one policy's failure must not cost
        another its record of the call."""
        for policy in self.done_phase:
            try:
                policy.on_done(ctx)
            except Exception:
                log.exception("policy %s failed in its done phase", policy.name)


EMPTY = Pipeline(())
