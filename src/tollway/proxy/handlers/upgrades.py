"""Protocol upgrades the gateway does not serve, answered so that clients fall back at once."""

from __future__ import annotations

from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection

_NO_WEBSOCKET = (
    "The Responses API is served over HTTP here (POST /v1/responses), not over a WebSocket."
)


def responses_websocket(ctx: RequestContext, conn: HttpConnection) -> None:
    """`GET /v1/responses` asking for a WebSocket: Codex CLI tries the Responses API that way
    first and goes over to HTTP at once only when the upgrade is answered 426; any other
    answer costs it several retries and seconds before every session."""
    ctx.status = 426
    conn.send_error(
        426, _NO_WEBSOCKET, code="websocket_not_supported", type="invalid_request_error"
    )
