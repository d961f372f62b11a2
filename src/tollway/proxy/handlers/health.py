"""Liveness and readiness probes."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from tollway.config.snapshot import SnapshotHolder
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.server import HttpServer

_OK = b'{"status":"ok"}'
_READY = b'{"status":"ready"}'
_DRAINING = b'{"status":"draining"}'


class Health:
    def __init__(self) -> None:
        self.server: HttpServer | None = None
        self.holder: SnapshotHolder | None = None
        # Why the store cannot be read, as the supervisor last said; None when it can.
        self.store_problem: str | None = None
        # Why shared rate-limit counters (Redis) cannot be used now; None when they can.
        self.counters_problem: Callable[[], str | None] | None = None

    def healthz(self, ctx: RequestContext, conn: HttpConnection) -> None:
        conn.send_json(200, _OK)

    def readyz(self, ctx: RequestContext, conn: HttpConnection) -> None:
        counters = self.counters_problem() if self.counters_problem is not None else None
        if self.server is None or self.server.draining:
            conn.send_json(503, _DRAINING)
        elif counters is not None:
            # Limits fall back to this node's share, budgets to their setting: ready, saying so.
            conn.send_json(200, orjson.dumps({"status": "degraded", "counters": counters}))
        elif self.store_problem is not None:
            # Still serving, on the last configuration it had: ready, and saying so, so that
            # a store outage does not take every node out of its load balancer at once.
            version = self.holder.current.version if self.holder is not None else None
            conn.send_json(
                200,
                orjson.dumps(
                    {
                        "status": "degraded",
                        "store": self.store_problem,
                        "configuration_version": version,
                    }
                ),
            )
        else:
            conn.send_json(200, _READY)
