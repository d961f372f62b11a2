"""Per-request state: the one object a policy sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.config.snapshot import ClientKey, RuntimeConfig
    from tollway.proxy.connection import HttpConnection
    from tollway.proxy.http import Request


class RequestContext:
    __slots__ = ("config", "conn", "key", "request")

    def __init__(self, request: Request, conn: HttpConnection, config: RuntimeConfig) -> None:
        self.request = request
        self.conn = conn
        # The snapshot this request started with; a swap mid-request does not affect it.
        self.config = config
        self.key: ClientKey | None = None
