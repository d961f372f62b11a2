"""Dispatching a request: the snapshot's route table, then the route's request phase, then its
handler.

The route table lives in the snapshot; handlers live in the worker (they hold its pools and
balancer state) and are known to routes by name. The two are bound once per snapshot, so a
request costs one dictionary lookup for its path and one for its method. Unknown paths get
OpenAI's 404 shape, known paths with another method a 405 with `Allow`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping

from tollway.config.snapshot import ClientKey, RouteEntry, RuntimeConfig, SnapshotHolder
from tollway.errors import GatewayError
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.proxy.replies import finish, refuse

Handler = Callable[[RequestContext, HttpConnection], Awaitable[None] | None]
_Bound = dict[str, tuple[RouteEntry, Handler]]


class Router:
    __slots__ = ("_config", "_exact", "_prefixes", "handlers", "holder", "on_close")

    def __init__(self, holder: SnapshotHolder, handlers: Mapping[str, Handler]) -> None:
        self.holder = holder
        self.handlers = dict(handlers)
        # What the handlers hold beyond a call (processes, channels), closed as the worker
        # stops, after its calls have drained.
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        self._config: RuntimeConfig | None = None
        self._exact: dict[str, _Bound] = {}
        # Prefix routes by their first path segment, longest prefix first within each.
        self._prefixes: dict[str, tuple[tuple[str, _Bound], ...]] = {}

    def _bind(self, config: RuntimeConfig) -> None:
        """Resolve the snapshot's handler names to this worker's handlers."""

        def bound(methods: Mapping[str, RouteEntry]) -> _Bound:
            return {
                method: (entry, self.handlers[entry.handler]) for method, entry in methods.items()
            }

        routes = config.routes
        self._exact = {path: bound(methods) for path, methods in routes.exact.items()}
        by_segment: dict[str, list[tuple[str, _Bound]]] = {}
        for prefix, methods in routes.prefixes:
            by_segment.setdefault(_first_segment(prefix), []).append((prefix, bound(methods)))
        self._prefixes = {segment: tuple(found) for segment, found in by_segment.items()}
        self._config = config

    def dispatch(
        self, request: Request, conn: HttpConnection, key: ClientKey | None = None
    ) -> Awaitable[None] | None:
        """Route a request to its handler through its pipeline's request phase. `key`: the
        caller already known, for calls the gateway makes itself (a batch's lines)."""
        config = self.holder.current
        if config is not self._config:
            self._bind(config)
        path = request.path
        methods = self._exact.get(path)
        if methods is None:
            for prefix, candidate in self._prefixes.get(_first_segment(path), ()):
                if path.startswith(prefix) and len(path) > len(prefix):
                    methods = candidate
                    break
            else:
                conn.send_json(
                    404,
                    GatewayError(
                        404, f"Invalid URL ({request.method} {path})", code="unknown_url"
                    ).body(),
                )
                return None
        found = methods.get(request.method)
        if found is None:
            # "*": every method (a REST service's routes); HEAD is answered as a GET.
            found = methods.get("*") or (methods.get("GET") if request.method == "HEAD" else None)
        if found is None:
            allow = ", ".join(sorted(methods)).encode()
            conn.send_json(
                405,
                GatewayError(
                    405,
                    f"Method {request.method} is not allowed on {path}; use {allow.decode()}.",
                    code="method_not_allowed",
                ).body(),
                [(b"allow", allow)],
            )
            return None
        entry, handler = found
        ctx = RequestContext(request, config, entry)
        if key is not None:
            ctx.key = key
        if entry.pipeline.request_phase:
            verdict = entry.pipeline.request(ctx)
            if verdict is not None:
                if isinstance(verdict, Pending):
                    return go_on_after(ctx, conn, verdict, handler)
                refuse(ctx, conn, verdict)
                return None
        return handler(ctx, conn)

    def streamed_body_limit(self, path: str) -> int | None:
        """For a request with a body on `path`: None when its route reads bodies whole (model
        APIs), else the largest body it takes as the body arrives (a REST service's routes,
        which forward bodies as they come, sys.maxsize when the service sets no limit; the
        model APIs' forms, up to `max_upload_bytes`)."""
        config = self.holder.current
        if config is not self._config:
            self._bind(config)
        methods = self._exact.get(path)
        if methods is None:
            for prefix, candidate in self._prefixes.get(_first_segment(path), ()):
                if path.startswith(prefix) and len(path) > len(prefix):
                    methods = candidate
                    break
            else:
                return None
        posted = methods.get("POST")
        if posted is not None and posted[0].api is not None and posted[0].api.form:
            return config.limits.max_upload_bytes  # a model API's upload (a form)
        found = methods.get("*")
        service = found[0].service if found is not None else None
        if service is None or service.rest is None:
            return None
        limits = [backend.max_request_bytes for backend in service.rest.backends()]
        return sys.maxsize if None in limits else max(limit or 0 for limit in limits)


async def go_on_after(
    ctx: RequestContext, conn: HttpConnection, pending: Pending, handler: Handler
) -> None:
    """A phase waited on a policy (a counter shared across nodes): refuse, or go on with
    `handler`."""
    try:
        verdict = await pending.waiter
    except BaseException:
        finish(ctx, "client_disconnect")
        raise
    if verdict is not None:
        refuse(ctx, conn, verdict)
        return
    work = handler(ctx, conn)
    if work is not None:
        await work


def _first_segment(path: str) -> str:
    """ "/v1/models/x" -> "v1"."""
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]
