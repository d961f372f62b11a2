"""Running N worker processes that share one port, and stopping them gracefully.

Each worker binds its own socket with SO_REUSEPORT, so the kernel spreads connections evenly
across them (a shared accept socket lets the busiest worker take most of them). Before the
workers start, the supervisor binds the port once without SO_REUSEPORT: that fails if anything,
another Tollway included, already listens there, instead of silently sharing its traffic.

SIGTERM or SIGINT: every worker is told to drain (in-flight requests and streams finish, within
the drain timeout), then the supervisor exits. A worker that dies on its own is restarted.

The supervisor is the one holder of the node's current configuration. On SIGHUP it asks
`reload()` for a new one (read and validated once, here) and pushes it to every worker over
that worker's control pipe; a worker started later (a replacement) begins with the current
one, never with the configuration the node started with.

Signals are noticed at once: the handlers write to a pipe that the supervisor's wait includes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

log = logging.getLogger("tollway.supervisor")

# A worker entry point: runs until told to stop; reports "ready" or "error: ..." on the first
# pipe, and receives configuration messages on the second.
WorkerMain = Callable[[Connection, Connection], int]
# Reads the configuration again; returns the message for the workers, or None to keep the
# running one (the reason already logged).
Reload = Callable[[], object | None]
# A companion process (the admin API): runs until SIGTERM, reports "ready" like a worker.
CompanionMain = Callable[[Connection], int]


class _Worker:
    __slots__ = ("control", "name", "process")

    def __init__(self, process: BaseProcess, control: Connection, name: str = "worker") -> None:
        self.process = process
        self.control = control
        self.name = name


class Supervisor:
    def __init__(
        self,
        worker_main: WorkerMain,
        count: int,
        stop_timeout_s: float,
        reload: Reload | None = None,
        *,
        tick: Reload | None = None,
        tick_interval_s: float = 0.25,
        companions: dict[str, CompanionMain] | None = None,
        after_fork: Callable[[], None] | None = None,
    ) -> None:
        self.worker_main = worker_main
        self.count = count
        self.stop_timeout_s = stop_timeout_s
        self.reload = reload
        # Called every `tick_interval_s`; what it returns is sent to every worker.
        self.tick = tick
        self.tick_interval_s = tick_interval_s
        self.companions = companions or {}
        self.after_fork = after_fork
        self.stopping = False
        self.reload_asked = False
        self.workers: list[_Worker] = []
        self.companion_processes: list[_Worker] = []
        self._ctx = multiprocessing.get_context("fork")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    @property
    def processes(self) -> list[BaseProcess]:
        return [w.process for w in (*self.workers, *self.companion_processes)]

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        self._wake()

    def _on_reload(self, signum: int, frame: object) -> None:
        self.reload_asked = True
        self._wake()

    def _spawn(self) -> tuple[_Worker, Connection]:
        ready_r, ready_w = self._ctx.Pipe(duplex=False)
        control_r, control_w = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_child,
            args=(
                self.worker_main,
                ready_w,
                control_r,
                self._wake_r,
                self._wake_w,
                self.after_fork,
            ),
        )
        process.start()
        ready_w.close()
        control_r.close()
        return _Worker(process, control_w), ready_r

    def _spawn_companion(self, name: str) -> tuple[_Worker, Connection]:
        ready_r, ready_w = self._ctx.Pipe(duplex=False)
        main = self.companions[name]
        process = self._ctx.Process(
            target=_companion,
            args=(main, ready_w, self._wake_r, self._wake_w, self.after_fork),
            name=name,
        )
        process.start()
        ready_w.close()
        # Companions take no pushes: their control end is the ready pipe, closed once read.
        return _Worker(process, ready_r, name), ready_r

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        started = [self._spawn() for _ in range(self.count)]
        self.workers = [worker for worker, _ in started]
        companions = [self._spawn_companion(name) for name in self.companions]
        self.companion_processes = [companion for companion, _ in companions]
        if not self._await_ready(started) or not self._await_ready(companions):
            self._stop()
            return 1
        log.info("%d workers ready", self.count)
        next_tick = time.monotonic()
        while not self.stopping:
            timeout = None
            if self.tick is not None:
                timeout = max(0.0, next_tick - time.monotonic())
            watched = (*self.workers, *self.companion_processes)
            wait([self._wake_r, *(w.process.sentinel for w in watched)], timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
            if self.stopping:
                break
            if self.reload_asked:
                self.reload_asked = False
                self._push(self.reload)
            if self.tick is not None and time.monotonic() >= next_tick:
                self._push(self.tick)
                next_tick = time.monotonic() + self.tick_interval_s
            for i, worker in enumerate(self.workers):
                if worker.process.exitcode is not None and not self.stopping:
                    self.workers[i] = self._replace(worker)
            for i, companion in enumerate(self.companion_processes):
                if companion.process.exitcode is not None and not self.stopping:
                    self.companion_processes[i] = self._replace_companion(companion)
        self._stop()
        return 0

    def _replace_companion(self, dead: _Worker) -> _Worker:
        log.error(
            "%s pid %d exited with code %s; starting another",
            dead.name,
            dead.process.pid,
            dead.process.exitcode,
        )
        time.sleep(0.2)
        replacement, ready = self._spawn_companion(dead.name)
        self._await_ready([(replacement, ready)])
        return replacement

    def _replace(self, dead: _Worker) -> _Worker:
        log.error(
            "worker pid %d exited with code %s; starting another",
            dead.process.pid,
            dead.process.exitcode,
        )
        dead.control.close()
        # A worker that dies at once would otherwise be restarted in a tight loop.
        time.sleep(0.2)
        replacement, ready = self._spawn()
        self._await_ready([(replacement, ready)])
        return replacement

    def _push(self, source: Reload | None) -> None:
        if source is None:
            return
        message = source()
        if message is None:
            return
        for worker in self.workers:
            if worker.process.exitcode is None:
                try:
                    worker.control.send(message)
                except OSError:
                    # The worker is dying; its replacement starts on the new configuration.
                    log.warning("worker pid %d did not take the reload", worker.process.pid)

    def _await_ready(self, started: list[tuple[_Worker, Connection]]) -> bool:
        deadline = time.monotonic() + 60
        try:
            for worker, reader in started:
                process = worker.process
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
        finally:
            for _, reader in started:
                reader.close()

    def _stop(self) -> None:
        # Workers first, companions once they have exited: the workers' last call records
        # reach the recorder before it is told to stop.
        for group in (self.workers, self.companion_processes):
            processes = [w.process for w in group]
            for process in processes:
                if process.exitcode is None and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s + 5
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.exitcode is None:
                    log.error("pid %d did not stop in time; killing it", process.pid)
                    process.kill()
                    process.join()
        for worker in self.workers:
            worker.control.close()


def _child_setup(wake_r: int, wake_w: int, after_fork: Callable[[], None] | None) -> None:
    # The supervisor's handlers and wake-up pipe are not the child's: it installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Reloads come over the control pipe; a SIGHUP sent to the whole process group must not
    # end the child.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.close(wake_r)
    os.close(wake_w)
    if after_fork is not None:
        after_fork()


def _child(
    worker_main: WorkerMain,
    ready: Connection,
    control: Connection,
    wake_r: int,
    wake_w: int,
    after_fork: Callable[[], None] | None,
) -> None:
    _child_setup(wake_r, wake_w, after_fork)
    code = worker_main(ready, control)
    raise SystemExit(code)


def _companion(
    main: CompanionMain,
    ready: Connection,
    wake_r: int,
    wake_w: int,
    after_fork: Callable[[], None] | None,
) -> None:
    _child_setup(wake_r, wake_w, after_fork)
    raise SystemExit(main(ready))
