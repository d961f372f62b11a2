"""Per-call state: the one object a policy sees, and what the call has learnt on its way.

It carries no connection: policies read the request and the call's facts, and answer through
their verdicts, never by writing to a socket.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tollway.config.snapshot import (
        ClientKey,
        Deployment,
        RouteEntry,
        RuntimeConfig,
        ServiceRuntime,
    )
    from tollway.llm.produced import Delivered


class IncomingRequest(Protocol):
    """The parsed HTTP request, as policies may read it (proxy.http.Request is one)."""

    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    request_id: bytes
    client_address: str

    def header(self, name: bytes) -> bytes | None: ...


class RequestContext:
    __slots__ = (
        "answer_headers",
        "answer_id",
        "asked_usage",
        "attempts",
        "before_answer",
        "cache_hit",
        "config",
        "cost",
        "delivered",
        "deployment",
        "error_code",
        "finished_at",
        "first_byte_at",
        "key",
        "model",
        "on_finish",
        "outcome",
        "refused_by",
        "request",
        "reserved",
        "response_body",
        "response_ref",
        "route",
        "saved_tokens",
        "service",
        "span",
        "started_at",
        "status",
        "sticky_provider",
        "stream",
        "trace_parent",
        "upstream_started_at",
        "usage",
    )

    def __init__(
        self, request: IncomingRequest, config: RuntimeConfig, route: RouteEntry | None
    ) -> None:
        self.request = request
        # The snapshot this call started with; a swap mid-call does not affect it.
        self.config = config
        self.route = route
        self.started_at = time.monotonic()
        # What the call learns, in order: the caller's key, the model asked for and whether
        # it streams, the deployment that served it and after how many attempts, the status
        # answered, the usage reported, and how it ended.
        self.key: ClientKey | None = None
        # The service the call is accounted to (its prefix's, or the one granting its model).
        self.service: ServiceRuntime | None = route.service if route is not None else None
        self.model: str | None = None
        self.stream = False
        # The gateway asked the upstream for a stream's usage on the client's behalf (for
        # metering), and keeps that usage chunk from the client, which did not ask for it.
        self.asked_usage = False
        self.deployment: Deployment | None = None
        self.attempts = 0
        self.status = 0
        self.usage: dict[str, Any] | None = None
        # Monotonic times: the upstream request sent, its first byte (streams), the end.
        self.upstream_started_at = 0.0
        self.first_byte_at = 0.0
        self.finished_at = 0.0
        # "completed", "refused", "client_disconnect", "upstream_error", "timeout", "error".
        self.outcome = ""
        # The error code answered (a refusal's or the upstream's), and the policy that refused.
        self.error_code: str | None = None
        self.refused_by: str | None = None
        # USD, from the model catalog and the usage (None: usage or price unknown).
        self.cost: Decimal | None = None
        self.cache_hit = False
        # The answer's body as it went to the client (whole answers; a recording service's
        # streams accumulate theirs), for services that record bodies.
        self.response_body: bytes | bytearray | None = None
        # A stream's bytes as they went out, read only when its usage is missing
        # (llm/produced.py: a stream cut short is metered for what it delivered).
        self.delivered: Delivered | None = None
        # Tracing (only when it is on): the call's span, and the W3C header that carries it
        # upstream.
        self.span: Any = None
        self.trace_parent: bytes | None = None
        # What policies reserved before the call, by policy name, to settle in the done phase
        # (a token estimate for a token limit, a cost estimate for a budget).
        self.reserved: dict[str, Any] | None = None
        # Headers policies add to the answer (a rate limit's x-ratelimit-* state).
        self.answer_headers: tuple[tuple[bytes, bytes], ...] = ()
        # A Responses call the gateway stores (llm/responses_output.ResponseRef), and its
        # handler's step once the call's account is closed (the stored response completed).
        self.response_ref: Any = None
        self.on_finish: Callable[[RequestContext], None] | None = None
        # A native Responses stream's response id, read from its last event.
        self.answer_id: str | None = None
        # The provider a call must be made at (it keeps the previous response the call
        # continues): the plan leaves out every deployment of another.
        self.sticky_provider: str | None = None
        # What must be written before a translated answer's last bytes go out (a stored
        # response's end, a conversation's output), so that a client's next call finds it.
        self.before_answer: Callable[[], Awaitable[None]] | None = None
        # Input tokens that fitting a kept conversation to the model saved (an estimate: the
        # whole history's less what was sent), for the call record.
        self.saved_tokens = 0
