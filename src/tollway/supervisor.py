"""Running N worker processes that share one port, and stopping them gracefully.

Each worker binds its own socket with SO_REUSEPORT, so the kernel spreads connections evenly
across them (a shared accept socket lets the busiest worker take most of them). Before the
workers start, the supervisor binds the port once without SO_REUSEPORT: that fails if anything,
another Tollway included, already listens there, instead of silently sharing its traffic.

SIGTERM or SIGINT: every worker is told to drain (in-flight requests and streams finish, within
the drain timeout), then the supervisor exits. SIGHUP is passed to every worker, which reloads
the configuration. A worker that dies on its own is restarted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

log = logging.getLogger("tollway.supervisor")

# A worker entry point: runs until told to stop; reports "ready" or "error: ..." on the pipe.
WorkerMain = Callable[[Connection], int]


class Supervisor:
    def __init__(self, worker_main: WorkerMain, count: int, stop_timeout_s: float) -> None:
        self.worker_main = worker_main
        self.count = count
        self.stop_timeout_s = stop_timeout_s
        self.stopping = False
        self.processes: list[BaseProcess] = []
        self._ctx = multiprocessing.get_context("fork")

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _forward_reload(self, signum: int, frame: object) -> None:
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        reader, writer = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=_child, args=(self.worker_main, writer), daemon=False)
        process.start()
        writer.close()
        return process, reader

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._forward_reload)
        workers = [self._spawn() for _ in range(self.count)]
        if not self._await_ready(workers):
            self._stop([p for p, _ in workers])
            return 1
        log.info("%d workers ready", self.count)
        processes = self.processes = [p for p, _ in workers]
        for _, reader in workers:
            reader.close()
        while not self.stopping:
            wait([p.sentinel for p in processes], timeout=0.5)
            for i, process in enumerate(processes):
                if process.exitcode is not None and not self.stopping:
                    log.error(
                        "worker pid %d exited with code %s; starting another",
                        process.pid,
                        process.exitcode,
                    )
                    time.sleep(0.2)
                    replacement, reader = self._spawn()
                    if self._await_ready([(replacement, reader)]):
                        processes[i] = replacement
                    reader.close()
        self._stop(processes)
        return 0

    def _await_ready(self, workers: list[tuple[BaseProcess, Connection]]) -> bool:
        deadline = time.monotonic() + 60
        for process, reader in workers:
            while True:
                if reader.poll(0.1):
                    try:
                        message = reader.recv()
                    except EOFError:
                        message = "error: the worker exited before it was ready"
                    if message == "ready":
                        break
                    log.error(
                        "worker pid %d failed to start: %s",
                        process.pid,
                        str(message).removeprefix("error: "),
                    )
                    return False
                if process.exitcode is not None:
                    log.error(
                        "worker pid %d exited during start-up (code %s)",
                        process.pid,
                        process.exitcode,
                    )
                    return False
                if self.stopping or time.monotonic() > deadline:
                    return False
        return True

    def _stop(self, processes: list[BaseProcess]) -> None:
        for process in processes:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s + 5
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.error("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def _child(worker_main: WorkerMain, writer: Connection) -> None:
    # The supervisor's handlers must not run in a worker: the worker installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Ignored until the worker's loop takes SIGHUP over: a reload asked for during start-up
    # must not end the worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = worker_main(writer)
    raise SystemExit(code)
