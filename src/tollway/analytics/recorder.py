"""The recorder companion: the process that takes the workers' call records and events.

Started by the supervisor beside the workers (like the admin API). It receives the workers'
batches over the channel the supervisor made before forking, keeps the Prometheus metrics
from them, and hands them to its writer thread (analytics/ingest.py), which stores them (or
spools them while the store cannot take them). Its webhook thread delivers events.

It serves GET /metrics: on the admin port itself when there is no store (`serve --upstream`,
or a file without a store: metrics and health only, no records kept), else on a private Unix
socket that the admin API's /metrics reads.

SIGTERM: the supervisor sends it once every worker has drained and exited, so every batch a
worker sent is already in the channel: the recorder reads them all, writes them (or spools
them), replays what the store will take, and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from tollway.analytics import retention, spool, wire
from tollway.analytics.exposition import ThreadedServer
from tollway.analytics.ingest import Ingest, SharedSpool
from tollway.analytics.metrics import Metrics

if TYPE_CHECKING:
    from tollway.settings import StoreSettings
    from tollway.store.database import Store

log = logging.getLogger("tollway.analytics")

# Larger than any message a worker sends (analytics/sink.py).
_RECEIVE_BUFFER = 16 << 20
# Records held in memory for the writer beyond which new batches go straight to the spool.
MAX_QUEUED = 200_000


@dataclass(frozen=True)
class RecorderSettings:
    # The store records go to; None: metrics only (nothing is stored).
    store: StoreSettings | None
    spool_dir: Path | None
    retention_days: int = retention.DEFAULT_RECORD_DAYS
    # GET /metrics wants `Authorization: Bearer <token>` when set.
    metrics_token: str | None = None
    # On SIGTERM, how long the last writes may take before what is left is spooled.
    shutdown_s: float = 10.0


def recorder_main(
    settings: RecorderSettings, channel: socket.socket, listener: socket.socket
) -> Callable[[Connection], int]:
    """The companion's entry point (see supervisor.CompanionMain)."""

    def main(ready: Connection) -> int:
        name_process(PROCESS_NAME)
        return Recorder(settings, channel, listener).run(ready)

    return main


# The recorder's name in `ps` and /proc/<pid>/comm, to tell it from the workers.
PROCESS_NAME = "tollway-record"


def name_process(name: str) -> None:
    """Names this process for `ps` (Linux; elsewhere nothing happens)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        return


class Recorder:
    def __init__(
        self, settings: RecorderSettings, channel: socket.socket, listener: socket.socket
    ) -> None:
        self.settings = settings
        self.channel = channel
        self.listener = listener
        self.metrics = Metrics()
        self.spool = SharedSpool(settings.spool_dir, self.metrics)
        self.ingest: Ingest | None = None
        self._buffer = bytearray(_RECEIVE_BUFFER)
        self._wake_r, self._wake_w = os.pipe()
        self.stopping = False
        self._spool_count_at = 0.0

    def run(self, ready: Connection) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop)
        os.set_blocking(self._wake_w, False)
        settings = self.settings
        webhooks = None
        if settings.store is not None:
            from tollway.analytics.webhooks import WebhookSender

            self.ingest = Ingest(
                self._open_store, self.metrics, self.spool, retention_days=settings.retention_days
            )
            ingest = self.ingest
            self.metrics.service_names = lambda: ingest.names
            self.metrics.gauge("tollway_record_store_up", 0)
            self.ingest.start()
            webhooks = WebhookSender(
                lambda: ingest.store if ingest.healthy else None,
                lambda ok: self.metrics.count(
                    "tollway_webhook_deliveries_total" if ok else "tollway_webhook_failures_total"
                ),
            )
            webhooks.start()
        server = ThreadedServer(self.listener, self.metrics, settings.metrics_token)
        server.start()
        ready.send("ready")
        ready.close()
        try:
            while not self.stopping:
                select.select([self.channel.fileno(), self._wake_r], [], [], 0.5)
                self._receive()
                self._gauges()
            # Every worker has exited: what they sent is all in the channel now.
            self._receive()
            self._shut_down()
        finally:
            if webhooks is not None:
                webhooks.stop()
            server.stop()
        return 0

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def _open_store(self) -> Store:
        from tollway.store.database import open_store

        at = self.settings.store
        assert at is not None
        return open_store(
            data_dir=at.data_dir,
            store=at.store_url,
            secret_key=at.secret_key,
            apply_migrations=False,
        )

    def _receive(self) -> None:
        view = memoryview(self._buffer)
        while True:
            try:
                size = self.channel.recv_into(self._buffer, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            if size == 0:
                return
            try:
                message = wire.decode(bytes(view[:size]))
            except wire.BadMessage as exc:
                log.error("the recorder got a message it cannot read: %s", exc)
                continue
            self._handle(message)

    def _handle(self, message: wire.Message) -> None:
        metrics = self.metrics
        if isinstance(message, wire.Report):
            metrics.report(message)
            return
        if isinstance(message, wire.RecordBatch):
            metrics.observe(message)
            metrics.count("tollway_records_received_total", len(message.records))
        else:
            for event in message:
                metrics.event(event.kind)
        ingest = self.ingest
        if ingest is None:
            return  # metrics only
        if ingest.queued > MAX_QUEUED:
            # The store is slower than the calls: keep memory bounded, replay later.
            if isinstance(message, wire.RecordBatch):
                self.spool.put([message], [])
            else:
                self.spool.put([], message)
            return
        ingest.put(message)

    def _gauges(self) -> None:
        if self.ingest is not None:
            self.metrics.gauge("tollway_record_queue", self.ingest.queued)
        now = time.monotonic()
        directory = self.settings.spool_dir
        if directory is not None and now - self._spool_count_at >= 2.0:
            self._spool_count_at = now
            self.metrics.gauge("tollway_spool_files", len(spool.ready_files(directory)))

    def _shut_down(self) -> None:
        ingest = self.ingest
        if ingest is None:
            return
        if not ingest.finish(self.settings.shutdown_s):
            batches, events = ingest.abandon()
            log.error(
                "the store did not take the last %d record batches in time: spooled for the "
                "next start",
                len(batches),
            )
            self.spool.put(batches, events)
        self.spool.seal()
        log.info(
            "recorder stopped: %d records received",
            int(self.metrics.recorder.get("tollway_records_received_total", 0)),
        )
