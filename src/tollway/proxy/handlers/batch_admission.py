"""A passed-through batch checked at its creation: each model's calls as one of its lines
would be checked (the route's body phase), and the whole batch's estimated cost against the
budgets of the key's calls (docs/media-apis.md, Batches)."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from tollway.batches.jobs import Line
from tollway.config.snapshot import RouteEntry
from tollway.errors import GatewayError
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.handlers.batch_provider import JSON
from tollway.proxy.http import Request

log = logging.getLogger("tollway.batches")


async def admitted(
    ctx: RequestContext, entry: RouteEntry, endpoint: str, model: str, line: Line
) -> bool:
    """Whether the batch's key may make `model`'s calls, checked as one of its lines would
    be by the route's body phase, and what the check took given back. Raises the refusal;
    False when a rate limit refused (it hides the checks behind it)."""
    if not entry.pipeline.body_phase:
        return True
    request = Request(
        "POST",
        endpoint,
        b"",
        [(b"content-type", JSON)],
        line.body,
        "1.1",
        True,
        ctx.request.request_id,
        ctx.request.client_address,
    )
    probe = RequestContext(request, ctx.config, entry)
    probe.key = ctx.key
    probe.model = model
    verdict = entry.pipeline.body(probe)
    try:
        if isinstance(verdict, Pending):
            verdict = await verdict.waiter
    finally:
        # Nothing was called: the limits and budgets get back what the check took.
        probe.finished_at = time.monotonic()
        for policy in entry.pipeline.done_phase:
            if policy.name in ("rate_limit", "budget"):
                policy.on_done(probe)
    if isinstance(verdict, GatewayError):
        if probe.refused_by == "rate_limit":
            return False
        raise verdict
    return True


async def budget_fits(
    ctx: RequestContext,
    entry: RouteEntry,
    limiter: Any,
    costs: dict[str, Decimal],
    demands: dict[str, Any],
) -> None:
    """Whether the whole batch's estimated cost fits in every budget of the key's calls:
    each model's lines reserved together (so that one budget sees them all), then given
    back (the batch is charged as its lines are metered). Raises the budget's refusal."""
    tickets = []
    try:
        for model, cost in costs.items():
            probe = RequestContext(ctx.request, ctx.config, entry)
            probe.key = ctx.key
            probe.model = model
            ticket = limiter.admit_cost(probe, float(cost))
            if ticket is None:
                continue
            tickets.append(ticket)
            if ticket.future is not None and ticket.outcome is None:
                await asyncio.shield(ticket.future)
            refusal = limiter.over_budget(ticket)
            if refusal is not None:
                log.info(
                    "batch refused: %d lines of %s, USD %s estimated, over budget",
                    demands[model].lines,
                    model,
                    cost,
                )
                raise refusal
    finally:
        for ticket in tickets:
            limiter.release(ticket)
