"""The composition root: build a worker's data plane from a snapshot and run it."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Callable
from multiprocessing.connection import Connection

import uvloop

from tollway import __version__
from tollway.config.compile import compile_config
from tollway.config.load import ConfigError
from tollway.config.models import GatewayConfig
from tollway.config.snapshot import RuntimeConfig, SnapshotHolder
from tollway.proxy.balancer import Balancers
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.health import Health
from tollway.proxy.handlers.model_call import ModelCalls
from tollway.proxy.handlers.models import ModelList
from tollway.proxy.handlers.passthrough import RestProxy
from tollway.proxy.routing import Router
from tollway.proxy.server import HttpServer, bind_socket
from tollway.proxy.upstream import Upstreams
from tollway.settings import ServeSettings, gateway_config
from tollway.supervisor import Supervisor

log = logging.getLogger("tollway")


def build_router(holder: SnapshotHolder, upstreams: Upstreams, health: Health) -> Router:
    """A worker's handlers, known to the snapshot's routes by name."""
    balancers = Balancers()
    calls = ModelCalls(upstreams, balancers)
    models = ModelList(upstreams, balancers)
    rest = RestProxy(upstreams, balancers)
    return Router(
        holder,
        {
            "model_call": calls.handle,
            "list_models": models.list_models,
            "retrieve_model": models.retrieve_model,
            "rest_proxy": rest.handle,
            "healthz": health.healthz,
            "readyz": health.readyz,
        },
    )


async def run_worker(
    runtime: RuntimeConfig,
    sock: socket.socket,
    node: NodeConfig | None = None,
    ready: Connection | None = None,
    control: Connection | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain.

    Reloads come one of two ways: alone (one worker, no supervisor), SIGHUP makes `node` read
    the configuration again here; under a supervisor, the supervisor does that and the new
    configuration arrives on the `control` pipe.
    """
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    upstreams = Upstreams(deadlines)
    health = Health()
    holder = SnapshotHolder(runtime)
    router = build_router(holder, upstreams, health)
    server = HttpServer(router.dispatch, runtime.limits, deadlines)
    health.server = server
    await server.start(sock)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if node is not None and control is not None:
        loop.add_reader(control.fileno(), _take_pushed, control, holder, server, node)
    elif node is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_here, holder, server, node)
    if ready is not None:
        ready.send("ready")
        ready.close()
    await stop.wait()
    if control is not None:
        loop.remove_reader(control.fileno())
    log.info("worker %d draining (up to %g s)", os.getpid(), runtime.drain_timeout_s)
    left = await server.drain(runtime.drain_timeout_s)
    if left:
        log.warning(
            "worker %d cut %d connections still busy at the drain deadline", os.getpid(), left
        )
    upstreams.close()
    deadlines.stop()


def _reload_here(holder: SnapshotHolder, server: HttpServer, node: NodeConfig) -> None:
    message = node.reload()
    if message is not None:
        _swap(holder, server, lambda: node.compile_pushed(message))


def _take_pushed(
    control: Connection,
    holder: SnapshotHolder,
    server: HttpServer,
    node: NodeConfig,
) -> None:
    try:
        message = control.recv()
    except (EOFError, OSError):
        # The supervisor is gone; SIGTERM (or the end of the process group) follows.
        asyncio.get_running_loop().remove_reader(control.fileno())
        return
    _swap(holder, server, lambda: node.compile_pushed(message))


def _swap(holder: SnapshotHolder, server: HttpServer, build: Callable[[], RuntimeConfig]) -> None:
    """One assignment swaps the snapshot: requests already running keep the one they started
    with. A configuration that does not compile is reported and the running one stays."""
    try:
        fresh = build()
    except ConfigError as exc:
        log.error(
            "worker %d: reload failed, keeping configuration version %d:\n%s",
            os.getpid(),
            holder.current.version,
            exc,
        )
        return
    holder.current = fresh
    server.limits = fresh.limits
    log.info("worker %d: configuration version %d in service", os.getpid(), fresh.version)


class NodeConfig:
    """The node's current validated configuration and its version, held by the supervisor
    (or the single worker): reloads replace it whole, and a worker started later compiles
    the current one, not the one the node started with."""

    def __init__(self, settings: ServeSettings, config: GatewayConfig) -> None:
        self.settings = settings
        self.config = config
        self.version = 1
        self._source = settings.config_path or "command line"

    def compile(self, config: GatewayConfig, version: int) -> RuntimeConfig:
        return compile_config(config, self.settings.environ, version=version, source=self._source)

    def current(self) -> RuntimeConfig:
        return self.compile(self.config, self.version)

    def reload(self) -> tuple[int, GatewayConfig] | None:
        """Read the file again and check that it compiles; None (logged) keeps the old one."""
        try:
            fresh = gateway_config(self.settings)
            self.compile(fresh, self.version + 1)
        except ConfigError as exc:
            log.error("reload failed, keeping configuration version %d:\n%s", self.version, exc)
            return None
        server = self.config.server
        if (fresh.server.host, fresh.server.port, fresh.server.workers) != (
            server.host,
            server.port,
            server.workers,
        ):
            log.warning("server.host, port and workers change only with a restart")
        self.version += 1
        self.config = fresh
        log.info("configuration version %d read from %s", self.version, self._source)
        return self.version, fresh

    def compile_pushed(self, message: object) -> RuntimeConfig:
        """Compile a configuration the supervisor pushed: (version, GatewayConfig)."""
        if not (
            isinstance(message, tuple)
            and len(message) == 2
            and isinstance(message[0], int)
            and isinstance(message[1], GatewayConfig)
        ):
            raise ConfigError("supervisor", [f"unexpected reload message {type(message)}"])
        version, config = message
        self.version, self.config = version, config
        return self.compile(config, version)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: ServeSettings) -> int:
    """`tollway serve`: validate everything in the parent, then run the workers."""
    try:
        config = gateway_config(settings)
        runtime = compile_config(
            config, settings.environ, source=settings.config_path or "command line"
        )
    except ConfigError as exc:
        log.error("invalid configuration:\n%s", exc)
        return 2
    server = config.server
    workers = server.workers or os.cpu_count() or 1
    if not runtime.auth_required:
        if not _is_loopback(server.host) and not server.allow_unauthenticated:
            log.error(
                "no client keys are configured, so the gateway would be open to anyone "
                "who can reach %s. Configure keys (or --key), or listen on a loopback "
                "address.",
                server.host,
            )
            return 2
        log.warning(
            "no client keys configured: accepting unauthenticated calls on %s",
            "loopback only" if _is_loopback(server.host) else server.host,
        )
    if workers > 1 and server.port == 0:
        log.error("port 0 needs --workers 1 (each worker would get a port of its own)")
        return 2
    try:
        sock = bind_socket(server.host, server.port, reuse_port=False)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", server.host, server.port, exc.strerror)
        return 1
    port = sock.getsockname()[1]
    names = sorted(runtime.models) + (["* (any other name)"] if runtime.wildcard else [])
    log.info(
        "tollway %s listening on http://%s:%d with %d worker%s; models: %s",
        __version__,
        server.host,
        port,
        workers,
        "" if workers == 1 else "s",
        ", ".join(names) or "none",
    )

    node = NodeConfig(settings, config)
    if workers == 1:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop takes it over
        uvloop.run(run_worker(runtime, sock, node))
        log.info("stopped")
        return 0
    sock.close()

    def worker_main(ready: Connection, control: Connection) -> int:
        try:
            own = bind_socket(server.host, port, reuse_port=True)
        except OSError as exc:
            ready.send(f"error: cannot listen on {server.host}:{port}: {exc.strerror}")
            return 3
        # Forked from the supervisor: `node` is its current configuration, reloads included.
        try:
            current = node.current()
        except ConfigError as exc:
            ready.send(f"error: {exc}")
            return 3
        uvloop.run(run_worker(current, own, node, ready, control))
        return 0

    code = Supervisor(worker_main, workers, server.drain_timeout_s, node.reload).run()
    log.info("stopped")
    return code
