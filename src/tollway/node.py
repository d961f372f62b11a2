"""The node's configuration: where it comes from, and how a change reaches every worker.

Sources are the YAML file (if any) and the control plane's store (if any). The supervisor
holds the current `Push` (the file's validated config and the store's state, with a version)
and is the only process that reads either source: on SIGHUP it reads the file again, and every
`poll_interval_s` it reads the store's config version (one small query) and, when it moved,
the whole state. It compiles what it read, to refuse a broken change before any worker sees
it, then sends it to every worker, which compiles its own snapshot and swaps it in. A worker
started later (a replacement) compiles the current push, never the one the node started with.

The hot path never touches the store: workers only receive pushes. When the store cannot be
read, workers keep serving the last snapshot and are told, so that /readyz can say so.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tollway.config.compile import compile_config
from tollway.config.load import ConfigError
from tollway.config.models import GatewayConfig
from tollway.config.snapshot import RuntimeConfig
from tollway.settings import ServeSettings, gateway_config

if TYPE_CHECKING:
    from tollway.limits.alerts import EventSink
    from tollway.limits.counters import CounterStore
    from tollway.store.database import Store
    from tollway.store.state import ControlPlaneState

log = logging.getLogger("tollway")


@dataclass(frozen=True, slots=True)
class Push:
    """A configuration for the workers: the file's part and the store's, at one version."""

    version: int
    config: GatewayConfig
    state: ControlPlaneState | None

    def __reduce__(self) -> tuple[object, ...]:
        # The state's read-only mappings do not pickle; the pipe to a worker carries copies.
        state = self.state
        if state is not None:
            copies: dict[str, Any] = {
                f.name: dict(getattr(state, f.name))
                for f in dataclasses.fields(state)
                if isinstance(getattr(state, f.name), Mapping)
            }
            state = dataclasses.replace(state, **copies)
        return (Push, (self.version, self.config, state))


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether the supervisor can read the store; `problem` says why not."""

    problem: str | None
    since: float


class NodeConfig:
    """Held by the supervisor (or by the single worker of a file-only gateway)."""

    poll_interval_s = 0.25
    # How often a batch passed through to a provider is polled there (settings.batch_poll_s).
    batch_poll_s = 5.0

    def __init__(
        self,
        settings: ServeSettings,
        config: GatewayConfig,
        store: Store | None = None,
        state: ControlPlaneState | None = None,
    ) -> None:
        self.settings = settings
        self.push = Push(1, config, state)
        self.store = store
        self.store_problem: str | None = None
        # Whether calls are recorded (a recorder or the metrics take them): `record` policy.
        self.records = False
        # Rate-limit and budget counters (the node's shared memory, or Redis in a worker),
        # and the worker's event sink: handed to the policies at compile time.
        self.counters: CounterStore | None = None
        self.events: EventSink | None = None
        # The SQLite file of the node's stored responses and conversations (every worker
        # opens it), if any.
        self.state_at: Path | None = None
        # Or the Redis that keeps them for every node of a cluster (`--redis`).
        self.state_redis: str | None = None
        # The Files API's uploads and the batches, when not beside the state: a folder the
        # nodes of a cluster share (settings.files_dir).
        self.files_at: Path | None = None
        self._source = settings.config_path or ("store" if store is not None else "command line")

    @property
    def version(self) -> int:
        return self.push.version

    def compile(self, push: Push) -> RuntimeConfig:
        return compile_config(
            push.config,
            self.settings.environ,
            version=push.version,
            source=self._source,
            state=push.state,
            records=self.records,
            counters=self.counters,
            events=self.events,
        )

    def current(self) -> RuntimeConfig:
        return self.compile(self.push)

    def _accept(self, config: GatewayConfig, state: ControlPlaneState | None) -> Push | None:
        fresh = Push(self.push.version + 1, config, state)
        try:
            self.compile(fresh)
        except ConfigError as exc:
            log.error("configuration refused, keeping version %d:\n%s", self.push.version, exc)
            return None
        self.push = fresh
        return fresh

    def reload(self) -> Push | None:
        """SIGHUP: read the file again; None (logged) keeps the running configuration."""
        try:
            config = gateway_config(self.settings)
        except ConfigError as exc:
            log.error("reload failed, keeping configuration version %d:\n%s", self.version, exc)
            return None
        server = self.push.config.server
        if (config.server.host, config.server.port, config.server.workers) != (
            server.host,
            server.port,
            server.workers,
        ):
            log.warning("server.host, port and workers change only with a restart")
        pushed = self._accept(config, self.push.state)
        if pushed is not None:
            log.info("configuration version %d read from %s", pushed.version, self._source)
        return pushed

    def poll(self) -> Push | StoreHealth | None:
        """Read the store's version; a new push when it moved, a health report when the
        store's readability changed, else None."""
        store = self.store
        if store is None:
            return None
        from tollway.store.errors import StoreError

        state = self.push.state
        try:
            version = store.current_version()
            if state is not None and version == state.version:
                return self._healthy()
            fresh = store.load_state()
        except StoreError as exc:
            return self._unhealthy(str(exc))
        recovered = self._healthy()
        pushed = self._accept(self.push.config, fresh)
        if pushed is None:
            return recovered
        log.info("configuration version %d from store version %d", pushed.version, fresh.version)
        return pushed

    def _healthy(self) -> StoreHealth | None:
        if self.store_problem is None:
            return None
        log.warning("the store is readable again")
        self.store_problem = None
        return StoreHealth(None, time.time())

    def _unhealthy(self, problem: str) -> StoreHealth | None:
        if self.store_problem == problem:
            return None
        log.error(
            "cannot read the store (serving configuration version %d): %s", self.version, problem
        )
        self.store_problem = problem
        return StoreHealth(problem, time.time())

    def take(self, message: object) -> RuntimeConfig:
        """Worker side: compile a push from the supervisor."""
        if not isinstance(message, Push):
            raise ConfigError("supervisor", [f"unexpected message {type(message).__name__}"])
        self.push = message
        return self.compile(message)
