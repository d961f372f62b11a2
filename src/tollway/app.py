"""The composition root: build a worker's data plane from a snapshot and run it."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from tollway import __version__, admin_companion, data_plane_build
from tollway.admin import server as admin_server
from tollway.analytics.sink import worker_sink
from tollway.analytics.worker import WorkerRecording
from tollway.batches.files import FileStore
from tollway.batches.jobs import BatchStore
from tollway.config.load import ConfigError
from tollway.config.snapshot import RuntimeConfig, SnapshotHolder
from tollway.conversations.sqlite_conversations import SqliteConversationStore
from tollway.conversations.sqlite_store import SqliteResponseStore
from tollway.conversations.stored import ConversationStore, ResponseStore
from tollway.heap_trim import HeapTrimmer
from tollway.limits.boot import NodeCounters
from tollway.node import NodeConfig, StoreHealth
from tollway.observability import tracing
from tollway.proxy.balancer import Balancers
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers import upgrades
from tollway.proxy.handlers.batch_passthrough import PassThrough
from tollway.proxy.handlers.batches import Batches
from tollway.proxy.handlers.conversations import Conversations
from tollway.proxy.handlers.files import FilesApi
from tollway.proxy.handlers.health import Health
from tollway.proxy.handlers.mcp import McpServer
from tollway.proxy.handlers.model_call import ModelCalls
from tollway.proxy.handlers.models import ModelList
from tollway.proxy.handlers.passthrough import RestProxy
from tollway.proxy.handlers.prompt_api import PromptApis
from tollway.proxy.handlers.realtime import RealtimeSessions
from tollway.proxy.handlers.responses import StoredResponses
from tollway.proxy.health_checks import HealthChecks
from tollway.proxy.routing import Router
from tollway.proxy.server import HttpServer, bind_socket
from tollway.proxy.targets import TargetPools
from tollway.proxy.upstream import Upstreams
from tollway.settings import (
    RecordingSettings,
    ServeSettings,
    StoreSettings,
    batch_poll_s,
    counters_redis_url,
    counters_redis_wait_s,
    default_data_dir,
    files_dir,
    gateway_config,
    recording_settings,
    settings_store,
)
from tollway.supervisor import Supervisor

if TYPE_CHECKING:
    from tollway.policies.budget import BudgetConfig
    from tollway.store.database import Store
    from tollway.store.state import ControlPlaneState

log = logging.getLogger("tollway")


def build_router(
    holder: SnapshotHolder,
    upstreams: Upstreams,
    health: Health,
    targets: TargetPools | None = None,
    balancers: Balancers | None = None,
    responses: StoredResponses | None = None,
    conversations: Conversations | None = None,
    files: FileStore | None = None,
    batches: Batches | None = None,
) -> Router:
    """A worker's handlers, known to the snapshot's routes by name."""
    balancers = balancers or Balancers()
    calls = ModelCalls(upstreams, balancers)
    prompts = calls.prompts = PromptApis(upstreams, balancers)
    responses = responses or StoredResponses(calls, None)
    conversations = conversations or Conversations(None)
    models = ModelList(upstreams, balancers)
    rest = RestProxy(targets or TargetPools(upstreams.deadlines), upstreams.deadlines)
    mcp = McpServer(prompts, rest)
    router = Router(
        holder,
        {
            "model_call": calls.handle,
            "create_response": responses.create,
            "stored_response": responses.stored,
            "conversations": conversations.handle,
            "files": FilesApi(files).handle,
            "batches": (batches or Batches(None, holder)).handle,
            "list_models": models.list_models,
            "retrieve_model": models.retrieve_model,
            "rest_proxy": rest.handle,
            "prompt_api": prompts.handle,
            "prompt_api_document": prompts.document,
            "mcp": mcp.handle,
            "healthz": health.healthz,
            "readyz": health.readyz,
            "responses_websocket": upgrades.responses_websocket,
            "realtime": RealtimeSessions(upstreams, balancers).handle,
        },
    )
    router.on_close.append(mcp.close)
    return router


async def run_worker(
    runtime: RuntimeConfig,
    sock: socket.socket,
    node: NodeConfig | None = None,
    ready: Connection | None = None,
    control: Connection | None = None,
    counters: NodeCounters | None = None,
    recording: WorkerRecording | None = None,
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
    health.holder = holder
    targets = TargetPools(deadlines)
    balancers = Balancers()
    stored = conversations = None
    if node is not None and (node.state_at is not None or node.state_redis is not None):
        responses_store, kept = _state_stores(node)
        conversations = Conversations(kept)
        stored = StoredResponses(ModelCalls(upstreams, balancers), responses_store, kept)
    # The Files API's uploads and the batches: in a folder the nodes share when one is named,
    # else in the node's state folder (every served gateway has one).
    state_at = node.state_at if node is not None else None
    files_at = node.files_at if node is not None else None
    if files_at is None and state_at is not None:
        files_at = state_at.parent / "files"
    files = FileStore(files_at) if files_at is not None else None
    batches = None
    if files is not None:
        batch_store = BatchStore(files)
        passthrough = PassThrough(batch_store, upstreams, lambda: holder.current)
        passthrough.poll_s = node.batch_poll_s if node is not None else passthrough.poll_s
        batches = Batches(batch_store, holder, passthrough)
    router = build_router(
        holder, upstreams, health, targets, balancers, stored, conversations, files, batches
    )
    server = HttpServer(router.dispatch, runtime.limits, deadlines, router.streamed_body_limit)
    health.server = server
    if counters is not None:
        # Connected to the shared counters (Redis) before the first call is taken: a call
        # taken earlier would be counted in this node's memory alone, as if the node were the
        # cluster (the kernel holds connections that come meanwhile).
        await counters.start()
        health.counters_problem = counters.problem
    await server.start(sock)
    if batches is not None:
        batches.start(router.dispatch)  # the node's batches, run by whichever worker locks each
    # Active health checks of REST targets, off the request path.
    checks = HealthChecks(holder, targets)
    checks.start()
    trimmer = HeapTrimmer()
    trimmer.start()
    if recording is not None:
        await recording.start(server.in_flight, lambda: balancers.describe(holder.current))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if node is not None and control is not None:
        loop.add_reader(control.fileno(), _take_pushed, control, holder, server, node, health)
    elif node is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_here, holder, server, node)
    if ready is not None:
        ready.send("ready")
        ready.close()
    await stop.wait()
    if control is not None:
        loop.remove_reader(control.fileno())
    if batches is not None:
        # Lines under way may end within the drain time; the rest run again on the next start.
        await batches.stop(runtime.drain_timeout_s)
    log.info("worker %d draining (up to %g s)", os.getpid(), runtime.drain_timeout_s)
    left = await server.drain(runtime.drain_timeout_s)
    if left:
        log.warning(
            "worker %d cut %d connections still busy at the drain deadline", os.getpid(), left
        )
    checks.stop()
    trimmer.stop()
    if stored is not None:
        # The last responses' ends are written before the store closes.
        await asyncio.gather(*stored.pending, return_exceptions=True)
        if stored.store is not None:
            stored.store.close()
        if stored.conversations is not None:
            stored.conversations.close()
    for close in router.on_close:
        await close()
    upstreams.close()
    targets.close()
    deadlines.stop()
    if recording is not None:
        # Every call has had its done phase: the last records go out.
        recording.stop()
    # The last spans, when traces are exported.
    tracing.shutdown()


def _state_stores(node: NodeConfig) -> tuple[ResponseStore, ConversationStore]:
    """Where this worker keeps stored responses and conversations: the cluster's Redis when
    there is one (every node sees them), else the node's SQLite file."""
    if node.state_redis is not None:
        # Imported here: redis-py is loaded only by the workers of a node that uses it.
        from tollway.conversations.redis_state import (
            RedisConversationStore,
            RedisResponseStore,
            RedisState,
        )

        shared = RedisState(node.state_redis)
        return RedisResponseStore(shared), RedisConversationStore(shared)
    assert node.state_at is not None
    return SqliteResponseStore(node.state_at), SqliteConversationStore(node.state_at)


def _reload_here(holder: SnapshotHolder, server: HttpServer, node: NodeConfig) -> None:
    pushed = node.reload()
    if pushed is not None:
        _swap(holder, server, lambda: node.take(pushed))


def _take_pushed(
    control: Connection,
    holder: SnapshotHolder,
    server: HttpServer,
    node: NodeConfig,
    health: Health,
) -> None:
    try:
        message = control.recv()
    except (EOFError, OSError):
        # The supervisor is gone; SIGTERM (or the end of the process group) follows.
        asyncio.get_running_loop().remove_reader(control.fileno())
        return
    if isinstance(message, StoreHealth):
        health.store_problem = message.problem
        return
    _swap(holder, server, lambda: node.take(message))


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: ServeSettings) -> int:
    """`tollway serve`: validate everything in the parent, then run the workers (and, with a
    store, the admin API beside them)."""
    try:
        store_at = settings_store(settings)
        config = gateway_config(settings)
        recording = recording_settings(settings, store_at)
    except ConfigError as exc:
        log.error("invalid configuration:\n%s", exc)
        return 2
    try:
        poll_s = batch_poll_s(settings)
        shared_files = files_dir(settings)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    store = None
    state = None
    if store_at is not None:
        opened = _open_store(store_at)
        if opened is None:
            return 2
        store, state = opened
    node = NodeConfig(settings, config, store, state)
    node.state_at, scratch = _state_file(settings, store_at)
    node.batch_poll_s = poll_s
    node.files_at = shared_files
    node.state_redis = counters_redis_url(settings)
    try:
        # Made before the fork: every worker counts rate limits and budgets in the same table.
        counters = NodeCounters(
            config.server.workers or os.cpu_count() or 1,
            counters_redis_url(settings),
            wait_s=counters_redis_wait_s(settings),
        )
    except ValueError as exc:
        log.error("invalid --redis URL or wait: %s", exc)
        return 2
    if store is not None and config.budgets is not None:
        _seed_budgets(counters, config.budgets, store)
    node.counters = counters.for_this_process() if config.server.workers == 1 else counters.shared
    # Every call is recorded: stored with a store, and the metrics' source in any case.
    node.records = True
    # Policies' events (budget alerts) go out with the records (stored, sent to webhooks).
    node.events = worker_sink()
    try:
        runtime = node.current()
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
    admin_sock = None
    if store is not None:
        admin_host = settings.admin_host or "127.0.0.1"
        admin_port = 8081 if settings.admin_port is None else settings.admin_port
        try:
            admin_sock = admin_server.bind(admin_host, admin_port)
        except OSError as exc:
            log.error(
                "cannot listen on %s:%d for the admin API: %s", admin_host, admin_port, exc.strerror
            )
            return 1
    else:
        admin_sock = _metrics_socket(settings)
        if admin_sock is None:
            node.records = False
            runtime = node.current()
    names = sorted(runtime.models) + (["* (any other name)"] if runtime.wildcard else [])
    log.info(
        "tollway %s listening on http://%s:%d with %d worker%s (data plane: %s); models: %s",
        __version__,
        server.host,
        port,
        workers,
        "" if workers == 1 else "s",
        data_plane_build(),
        ", ".join(names) or "none",
    )
    if admin_sock is not None and store_at is not None:
        host, admin_port = admin_sock.getsockname()[:2]
        log.info(
            "admin API on http://%s:%d/admin/v1/, console on /ui/ (store: %s)",
            host,
            admin_port,
            store_at.location,
        )
    elif admin_sock is not None:
        host, admin_port = admin_sock.getsockname()[:2]
        log.info(
            "metrics on http://%s:%d/metrics (no store: calls are not recorded)", host, admin_port
        )

    if store is None and workers == 1:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop takes it over
        lone = (
            WorkerRecording(metrics_socket=admin_sock, metrics_token=recording.metrics_token)
            if admin_sock is not None
            else None
        )
        gc.freeze()  # as a supervised worker does (below)
        uvloop.run(run_worker(runtime, sock, node, counters=counters, recording=lone))
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        log.info("stopped")
        return 0
    sock.close()
    companions, channel, private = _recorder(recording, store_at, admin_sock)

    def worker_main(ready: Connection, control: Connection) -> int:
        from tollway.analytics.recorder import name_process

        name_process("tollway-worker")
        try:
            own = bind_socket(server.host, port, reuse_port=True)
        except OSError as exc:
            ready.send(f"error: cannot listen on {server.host}:{port}: {exc.strerror}")
            return 3
        # Forked from the supervisor: `node` is its current configuration, reloads included.
        node.counters = counters.for_this_process()
        try:
            current = node.current()
        except ConfigError as exc:
            ready.send(f"error: {exc}")
            return 3
        shipping = None
        if channel is not None:
            shipping = WorkerRecording(channel=channel, spool_dir=recording.spool_dir)
        # What exists now (modules, the compiled configuration: ~100k objects) lives as long
        # as the worker: out of the collector's sight, a full collection scans only what
        # calls made since, instead of pausing the worker for tens of milliseconds.
        gc.freeze()
        uvloop.run(run_worker(current, own, node, ready, control, counters, shipping))
        return 0

    if store_at is not None and admin_sock is not None:
        metrics_path = private / "recorder.sock" if private is not None else None
        companions["admin API"] = admin_companion.admin_main(
            store_at, admin_sock, metrics_path, recording.metrics_token, config
        )
    supervisor = Supervisor(
        worker_main,
        workers,
        server.drain_timeout_s,
        node.reload,
        tick=node.poll if store is not None else None,
        tick_interval_s=node.poll_interval_s,
        companions=companions,
        # The children must not use (or close) the supervisor's store connections.
        after_fork=store.forget_connections if store is not None else None,
    )
    code = supervisor.run()
    if store is not None:
        store.close()
    for temporary in (private, scratch):
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    log.info("stopped")
    return code


def _state_file(
    settings: ServeSettings, store_at: StoreSettings | None
) -> tuple[Path, Path | None]:
    """Where the node keeps stored responses and conversations, and a folder to remove when
    it stops: beside an embedded store; under the data directory with a database store (this
    node's own: a cluster's nodes do not share it yet); in a temporary folder without a store
    (they last as long as the node)."""
    if store_at is not None and store_at.data_dir is not None:
        return store_at.data_dir / "state.sqlite3", None
    if store_at is not None and store_at.store_url is not None:
        digest = hashlib.sha256(store_at.store_url.encode()).hexdigest()[:16]
        return default_data_dir(settings.environ) / "state" / f"{digest}.sqlite3", None
    scratch = Path(tempfile.mkdtemp(prefix="tollway-state-"))
    return scratch / "state.sqlite3", scratch


def _metrics_socket(settings: ServeSettings) -> socket.socket | None:
    """Without a store, the admin port serves /metrics and health only. The default port
    already taken (another gateway on this machine) is a warning; a port asked for that cannot
    be had is too, and the gateway serves without metrics."""
    host = settings.admin_host or "127.0.0.1"
    port = 8081 if settings.admin_port is None else settings.admin_port
    try:
        return admin_server.bind(host, port)
    except OSError as exc:
        log.warning(
            "cannot listen on %s:%d for /metrics (%s): serving without metrics (choose another "
            "port with --admin-port)",
            host,
            port,
            exc.strerror,
        )
        return None


def _recorder(
    recording: RecordingSettings, store_at: StoreSettings | None, admin_sock: socket.socket | None
) -> tuple[dict[str, Callable[[Connection], int]], socket.socket | None, Path | None]:
    """The recorder companion (with a store: records stored, metrics on a private socket the
    admin API reads; without one: metrics only, on the admin port), the workers' end of its
    channel, and the private directory of its socket."""
    from tollway.analytics import spool
    from tollway.analytics.recorder import RecorderSettings, recorder_main
    from tollway.analytics.sink import channel_pair

    if store_at is None and admin_sock is None:
        return {}, None, None
    send, receive = channel_pair()
    private = None
    if store_at is not None:
        assert recording.spool_dir is not None
        spool.prepare(recording.spool_dir)
        private = Path(tempfile.mkdtemp(prefix="tollway-"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(private / "recorder.sock"))
        listener.listen(64)
    else:
        assert admin_sock is not None
        listener = admin_sock
    settings = RecorderSettings(
        store=store_at,
        spool_dir=recording.spool_dir,
        retention_days=recording.retention_days,
        metrics_token=recording.metrics_token,
    )
    return {"recorder": recorder_main(settings, receive, listener)}, send, private


def _open_store(at: StoreSettings) -> tuple[Store, ControlPlaneState] | None:
    """Open (and migrate) the store, make sure an admin can log in, read the state."""
    from tollway.store.bootstrap import bootstrap_admin
    from tollway.store.database import open_store
    from tollway.store.errors import StoreError

    try:
        store = open_store(data_dir=at.data_dir, store=at.store_url, secret_key=at.secret_key)
        boot = bootstrap_admin(store, env_token=at.admin_token)
        state = store.load_state()
    except StoreError as exc:
        log.error("cannot use the store at %s: %s", at.location, exc)
        return None
    if boot.token is not None:
        # Shown once: only its digest is kept.
        log.warning(
            "first start: the admin API token of user %r is %s (shown once; keep it, or set "
            "TOLLWAY_ADMIN_TOKEN)",
            boot.admin,
            boot.token,
        )
    return store, state


def _seed_budgets(counters: NodeCounters, budgets: BudgetConfig, store: Store) -> None:
    """Budgets start their period at what the call records say was spent in it."""
    from zoneinfo import ZoneInfo

    from tollway.analytics.spend import spend_since
    from tollway.store.errors import StoreError

    try:
        seeded = counters.seed_budgets(
            ((rule.scope, rule.period) for rule in budgets.rules),
            ZoneInfo(budgets.timezone),
            lambda scope, since: spend_since(store, scope, since),  # type: ignore[arg-type]
        )
    except StoreError as exc:
        log.error("budgets start from zero: the call records cannot be read (%s)", exc)
        return
    log.info("budgets: %d counters start from the call records' spend", seeded)
