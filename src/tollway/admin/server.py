"""Serving the admin API with uvicorn: on a host and port, or on a socket bound beforehand
(how `tollway serve --admin-port` runs it beside the data plane)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported when a server is made: a gateway worker binds the admin port through this
    # module but never serves the API, and uvicorn with FastAPI weigh ~8 MB of its memory.
    import uvicorn
    from fastapi import FastAPI

log = logging.getLogger("tollway.admin")


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for `serve_admin` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every keep-alive answer waits on a delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class AdminServer:
    """One uvicorn server for the admin app. Use `run()` (blocking), `await serve()` inside a
    running event loop, or `start_thread()` / `stop()` to run it beside other work."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 8081,
        sock: socket.socket | None = None,
    ) -> None:
        if sock is not None:
            host, port = sock.getsockname()[:2]
        import uvicorn

        self.sock = sock
        self.server = uvicorn.Server(_config(app, host, port))
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock] if self.sock is not None else None)

    def run(self) -> None:
        asyncio.run(self.serve())

    def start_thread(self, timeout_s: float = 10.0) -> None:
        """Serves on a thread of its own; returns once it accepts connections."""
        self._thread = threading.Thread(target=self.run, name="tollway-admin", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the admin server failed to start (see the log)")
            deadline.wait(0.02)
            waited += 0.02
            if waited > timeout_s:
                raise RuntimeError("the admin server did not start in time")

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
