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
from tollway.config.snapshot import RuntimeConfig
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.health import Health
from tollway.proxy.handlers.llm import OpenAIApi, SnapshotHolder
from tollway.proxy.handlers.messages import MessagesApi
from tollway.proxy.routing import Router
from tollway.proxy.server import HttpServer, bind_socket
from tollway.proxy.upstream import Upstreams
from tollway.settings import ServeSettings, gateway_config
from tollway.supervisor import Supervisor

log = logging.getLogger("tollway")


def build_router(holder: SnapshotHolder, upstreams: Upstreams, health: Health) -> Router:
    api = OpenAIApi(holder, upstreams)
    messages = MessagesApi(holder, upstreams)
    return Router(
        exact={
            "/v1/chat/completions": {"POST": api.chat_completions},
            "/v1/completions": {"POST": api.completions},
            "/v1/embeddings": {"POST": api.embeddings},
            "/v1/responses": {"POST": api.responses},
            "/v1/models": {"GET": api.list_models},
            "/v1/messages": {"POST": messages.messages},
            "/v1/messages/count_tokens": {"POST": messages.count_tokens},
            "/healthz": {"GET": health.healthz},
            "/readyz": {"GET": health.readyz},
        },
        prefixes={"/v1/models/": {"GET": api.retrieve_model}},
    )


Recompile = Callable[[int], RuntimeConfig]


async def run_worker(
    runtime: RuntimeConfig,
    sock: socket.socket,
    ready: Connection | None = None,
    recompile: Recompile | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain. SIGHUP swaps in a recompiled snapshot."""
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
    if recompile is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload, holder, server, recompile)
    if ready is not None:
        ready.send("ready")
        ready.close()
    await stop.wait()
    log.info("worker %d draining (up to %g s)", os.getpid(), runtime.drain_timeout_s)
    left = await server.drain(runtime.drain_timeout_s)
    if left:
        log.warning(
            "worker %d closed %d connections still busy at the drain deadline", os.getpid(), left
        )
    upstreams.close()
    deadlines.stop()


def _reload(holder: SnapshotHolder, server: HttpServer, recompile: Recompile) -> None:
    """One assignment swaps the snapshot: requests already running keep the one they started
    with. A configuration that does not compile is reported and the running one stays."""
    try:
        fresh = recompile(holder.current.version + 1)
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

    def recompile(version: int) -> RuntimeConfig:
        # The file is read again; the environment is the one read at start.
        fresh = gateway_config(settings)
        if (fresh.server.host, fresh.server.port, fresh.server.workers) != (
            server.host,
            server.port,
            server.workers,
        ):
            log.warning("server.host, port and workers change only with a restart")
        return compile_config(
            fresh, settings.environ, version=version, source=settings.config_path or "command line"
        )

    if workers == 1:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop takes it over
        uvloop.run(run_worker(runtime, sock, None, recompile))
        log.info("stopped")
        return 0
    sock.close()

    def worker_main(ready: Connection) -> int:
        try:
            own = bind_socket(server.host, port, reuse_port=True)
        except OSError as exc:
            ready.send(f"error: cannot listen on {server.host}:{port}: {exc.strerror}")
            return 3
        uvloop.run(run_worker(runtime, own, ready, recompile))
        return 0

    code = Supervisor(worker_main, workers, server.drain_timeout_s).run()
    log.info("stopped")
    return code
