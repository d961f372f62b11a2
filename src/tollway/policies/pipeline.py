"""The policy pipeline: named steps in an explicit order, with phases (see policies/base.py).

Built once per route when a snapshot is compiled, never per request. Each phase keeps only the
policies that take part in it, so an unused phase is an empty loop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tollway.policies.base import Policy, Verdict

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

    def request(self, ctx: RequestContext) -> Verdict:
        for policy in self.request_phase:
            verdict = policy.on_request(ctx)
            if verdict is not None:
                ctx.refused_by = policy.name
                return verdict
        return None

    def body(self, ctx: RequestContext) -> Verdict:
        for policy in self.body_phase:
            verdict = policy.on_body(ctx)
            if verdict is not None:
                ctx.refused_by = policy.name
                return verdict
        return None

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
