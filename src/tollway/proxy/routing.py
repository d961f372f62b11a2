"""The route table: path and method to handler, built once per worker.

Exact paths are one dictionary lookup; the few parameterised paths (`/v1/models/{id}`) are
matched by prefix after that. Unknown paths get OpenAI's 404 shape, known paths with another
method a 405 with `Allow`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from tollway.errors import GatewayError
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request

Handler = Callable[[Request, HttpConnection], Awaitable[None] | None]


class Router:
    def __init__(
        self,
        exact: Mapping[str, Mapping[str, Handler]],
        prefixes: Mapping[str, Mapping[str, Handler]],
    ) -> None:
        self.exact = {path: dict(methods) for path, methods in exact.items()}
        self.prefixes = tuple((prefix, dict(methods)) for prefix, methods in prefixes.items())

    def dispatch(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        methods = self.exact.get(request.path)
        if methods is None:
            for prefix, candidate in self.prefixes:
                if request.path.startswith(prefix) and len(request.path) > len(prefix):
                    methods = candidate
                    break
            else:
                conn.send_json(
                    404,
                    GatewayError(
                        404, f"Invalid URL ({request.method} {request.path})", code="unknown_url"
                    ).body(),
                )
                return None
        handler = methods.get(request.method)
        if handler is None and request.method == "HEAD":
            handler = methods.get("GET")
        if handler is None:
            allow = ", ".join(sorted(methods)).encode()
            conn.send_json(
                405,
                GatewayError(
                    405,
                    f"Method {request.method} is not allowed on {request.path}; use "
                    f"{allow.decode()}.",
                    code="method_not_allowed",
                ).body(),
                [(b"allow", allow)],
            )
            return None
        return handler(request, conn)
