"""`record`: one call record for every call, written off the hot path.

The done phase hands the finished call's context to the worker's record sink
(analytics/sink.py): one list append. The sink turns it into a record when it flushes (every
100 ms) and ships it to the recorder, which stores it and derives the metrics from it. Last in
the chain, so that the record sees what every other policy made of the call.

What a service records beyond the facts of the call (its request and response bodies,
redacted; how long its records are kept) is the service's setting in the store
(`PUT /admin/v1/services/{id}/recording`). When some service records bodies, the chunk phase
keeps that service's streamed answers too (others pass through untouched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.analytics.sink import RecordSink
from tollway.policies.base import Policy
from tollway.policies.config import PolicyConfig

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext


class RecordConfig(PolicyConfig):
    """No settings: what each service records is its recording setting in the store."""


class Record(Policy):
    name = "record"

    __slots__ = ("add",)

    def __init__(self, sink: RecordSink) -> None:
        self.add = sink.add

    def on_done(self, ctx: RequestContext) -> None:
        self.add(ctx)


class RecordWithBodies(Record):
    """`record` when some service records bodies: streamed answers are kept as they go."""

    __slots__ = ()

    def on_chunk(self, ctx: RequestContext, data: bytes) -> bytes:
        service = ctx.service
        if service is None or service.capture is None:
            return data
        kept = ctx.response_body
        if kept is None:
            kept = ctx.response_body = bytearray()
        room = service.capture.max_bytes - len(kept)
        if room > 0 and isinstance(kept, bytearray):
            kept += data[:room]
        return data
