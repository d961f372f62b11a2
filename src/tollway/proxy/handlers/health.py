"""Liveness and readiness probes."""

from __future__ import annotations

from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.server import HttpServer

_OK = b'{"status":"ok"}'
_READY = b'{"status":"ready"}'
_DRAINING = b'{"status":"draining"}'


class Health:
    def __init__(self) -> None:
        self.server: HttpServer | None = None

    def healthz(self, ctx: RequestContext, conn: HttpConnection) -> None:
        conn.send_json(200, _OK)

    def readyz(self, ctx: RequestContext, conn: HttpConnection) -> None:
        if self.server is None or self.server.draining:
            conn.send_json(503, _DRAINING)
        else:
            conn.send_json(200, _READY)
