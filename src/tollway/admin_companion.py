"""The admin API's companion process, started by the supervisor beside the workers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from tollway.admin import server as admin_server
from tollway.settings import StoreSettings

if TYPE_CHECKING:
    from tollway.config.models import GatewayConfig


def admin_main(
    at: StoreSettings,
    sock: socket.socket,
    metrics_path: Path | None = None,
    metrics_token: str | None = None,
    config: GatewayConfig | None = None,
) -> Callable[[Connection], int]:
    """The admin API's process: its own store handle (opened after the fork), uvicorn on the
    socket the supervisor bound; /metrics read from the recorder's socket; /limits shows
    `config`'s rate limits and budgets (as loaded at start: a reload does not reach it)."""

    def main(ready: Connection) -> int:
        from tollway.admin.app import create_admin_app
        from tollway.admin.routes.limits import Limits
        from tollway.analytics.exposition import unix_reader
        from tollway.analytics.recorder import name_process
        from tollway.store.database import open_store

        name_process("tollway-admin")

        store = open_store(
            data_dir=at.data_dir,
            store=at.store_url,
            secret_key=at.secret_key,
            apply_migrations=False,
        )
        metrics = deployments = None
        if metrics_path is not None:
            metrics = unix_reader(metrics_path)
            deployments = unix_reader(metrics_path, "/deployments")
        app = create_admin_app(
            store,
            metrics=metrics,
            deployments=deployments,
            metrics_token=metrics_token,
            limits_config=Limits.of(config) if config is not None else None,
        )
        server = admin_server.AdminServer(app, sock=sock)

        async def run() -> None:
            serving = asyncio.ensure_future(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.02)
            ready.send("ready" if server.started else "error: the admin API did not start")
            ready.close()
            await serving

        asyncio.run(run())
        store.close()
        return 0

    return main
