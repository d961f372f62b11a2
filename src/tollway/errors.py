"""Errors as clients see them: OpenAI's error JSON with the matching HTTP status.

Every error the gateway itself produces goes through `GatewayError`, so the wire shape is
decided in one place: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import orjson

# OpenAI's `type` values by status, used when a caller gives none.
_DEFAULT_TYPE = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    414: "invalid_request_error",
    417: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "upstream_error",
}


def error_payload(
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, object]:
    """The `{"error": {...}}` mapping, for bodies and for SSE error events."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class GatewayError(Exception):
    """An error to answer with: status plus OpenAI-shaped body."""

    __slots__ = ("code", "headers", "message", "param", "status", "type")

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        # Response headers that go with the error (a 429's Retry-After and rate-limit state).
        self.headers = headers
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _DEFAULT_TYPE.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )

    def payload(self) -> dict[str, object]:
        return error_payload(self.message, type=self.type, code=self.code, param=self.param)

    def body(self) -> bytes:
        return orjson.dumps(self.payload())


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type: str | None = None,
) -> bytes:
    return GatewayError(status, message, code=code, param=param, type=type).body()
