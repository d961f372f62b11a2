"""`access_log`: one JSON line per request on standard error, written after the answer.

Off by default (`server.access_log: true` or `serve --access-log` turns it on). A line says
who called what and how it went; never a key, a header value or a body.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from tollway.policies.base import Policy
from tollway.policies.config import PolicyConfig

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext


class AccessLogConfig(PolicyConfig):
    """No settings yet: the line's fields are fixed (docs/configuration.md lists them)."""


class AccessLog(Policy):
    name = "access_log"

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stderr.fileno() if fd is None else fd

    def on_done(self, ctx: RequestContext) -> None:
        os.write(self.fd, orjson.dumps(line_of(ctx)) + b"\n")


def line_of(ctx: RequestContext) -> dict[str, Any]:
    request = ctx.request
    usage = ctx.usage or {}
    deployment = ctx.deployment
    key = ctx.key
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "request_id": request.request_id.decode("latin-1"),
        "client": request.client_address,
        "method": request.method,
        "path": request.path,
        "status": ctx.status,
        "outcome": ctx.outcome,
        "duration_ms": round((ctx.finished_at - ctx.started_at) * 1000, 3),
        "model": ctx.model,
        "served_by": deployment.provider.name if deployment is not None else None,
        "upstream_model": (deployment.model or ctx.model) if deployment is not None else None,
        "input_tokens": usage.get("prompt_tokens"),
        "output_tokens": usage.get("completion_tokens"),
        "cost_usd": str(ctx.cost) if ctx.cost is not None else None,
        "key": key.name if key is not None else None,
        "app": key.app.name if key is not None and key.app is not None else None,
        "refused_by": ctx.refused_by,
        "error": ctx.error_code,
        "user_agent": (request.header(b"user-agent") or b"").decode("latin-1")[:200],
    }
