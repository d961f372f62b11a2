"""The policy pipeline: named steps run in an explicit order before the terminal handler.

A policy's request phase returns None to continue, or a `GatewayError` to answer with at once
(later policies and the upstream are then skipped). Pipelines are built once per config
snapshot, never per request.
"""

from __future__ import annotations

from typing import Protocol

from tollway.errors import GatewayError
from tollway.proxy.context import RequestContext


class Policy(Protocol):
    name: str

    def on_request(self, ctx: RequestContext) -> GatewayError | None: ...


class Pipeline:
    __slots__ = ("policies",)

    def __init__(self, policies: tuple[Policy, ...]) -> None:
        self.policies = policies

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def run_request(self, ctx: RequestContext) -> GatewayError | None:
        for policy in self.policies:
            refusal = policy.on_request(ctx)
            if refusal is not None:
                return refusal
        return None
