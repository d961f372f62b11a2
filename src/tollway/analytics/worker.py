"""A worker's part in recording: its sink, opened when it starts serving and closed (after
its drain, when every call has had its done phase) as it exits.

Under a supervisor the sink ships to the recorder companion over the channel. A lone worker
(one worker, no store, no supervisor) keeps the metrics itself and serves GET /metrics on the
admin port from its own event loop: the only case where a worker spends time on metrics, in
its flush every 100 ms, never in a call.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tollway.analytics import wire
from tollway.analytics.exposition import serve_in_loop
from tollway.analytics.metrics import Metrics
from tollway.analytics.sink import worker_sink

log = logging.getLogger("tollway.analytics")


@dataclass
class WorkerRecording:
    # To the recorder (under a supervisor), spilling to the spool directory...
    channel: socket.socket | None = None
    spool_dir: Path | None = None
    # ...or, for a lone worker, the admin socket it serves /metrics on itself.
    metrics_socket: socket.socket | None = None
    metrics_token: str | None = None

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.metrics: Metrics | None = None

    async def start(
        self,
        in_flight: Callable[[], int] | None = None,
        deployments: Callable[[], Sequence[wire.DeploymentRow]] | None = None,
    ) -> None:
        sink = worker_sink()
        if self.metrics_socket is not None:
            metrics = self.metrics = Metrics()

            def local(message: wire.Message) -> None:
                if isinstance(message, wire.RecordBatch):
                    metrics.observe(message)
                elif isinstance(message, wire.Report):
                    metrics.report(message)
                else:
                    for event in message:
                        metrics.event(event.kind)

            sink.open(local=local, in_flight=in_flight, deployments=deployments)
            self._server = await serve_in_loop(self.metrics_socket, metrics, self.metrics_token)
            return
        sink.open(
            channel=self.channel,
            spool_dir=self.spool_dir,
            in_flight=in_flight,
            deployments=deployments,
        )

    def stop(self) -> None:
        """After the drain: the last records go out."""
        sink = worker_sink()
        sink.close()
        if sink.dropped:
            log.error("%d call records could not be shipped or spooled", sink.dropped)
        if self._server is not None:
            self._server.close()
