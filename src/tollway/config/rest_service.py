"""REST services in the snapshot: immutable, precomputed for the hot path (header bytes,
lower-cased names, hash seeds), compiled from `config.rest_upstream` by `config.tenancy`.

What changes per call (round-robin positions, calls in flight, ejections, probe results)
lives in each worker beside the snapshot (proxy/targets.py), keyed by service and target URL,
so that a new snapshot keeps it for the targets it still has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tollway.config.transport import Origin, UpstreamTimeouts

HeaderList = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class RestTarget:
    """One upstream of a REST service."""

    name: str
    origin: Origin
    timeouts: UpstreamTimeouts
    host: bytes
    weight: int = 1
    max_idle: int = 256
    ca_file: str | None = None
    tls_verify: bool = True
    # The target's URL: its identity for the state kept per worker (health, calls in flight).
    url: str = ""
    # 64 bits derived from the URL, for rendezvous hashing: every worker and every node
    # computes the same, so a key goes to the same target wherever it lands.
    seed: int = 0


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """Applied in this order: remove, rename, add (replacing any header of that name)."""

    remove: frozenset[bytes] = frozenset()
    rename: Mapping[bytes, bytes] = field(default_factory=lambda: MappingProxyType({}))
    add: HeaderList = ()

    @property
    def empty(self) -> bool:
        return not (self.remove or self.rename or self.add)

    def apply(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`headers` with the rules applied (names are lower-case bytes)."""
        if self.empty:
            return headers
        remove, rename = self.remove, self.rename
        added = {name for name, _ in self.add}
        out = []
        for name, value in headers:
            if name in remove:
                continue
            name = rename.get(name, name)
            if name not in added:
                out.append((name, value))
        out.extend(self.add)
        return out


NO_HEADER_RULES = HeaderRules()


@dataclass(frozen=True, slots=True)
class ActiveHealthCheck:
    path: str = "/"
    interval_s: float = 5.0
    timeout_s: float = 2.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    # None: any 2xx or 3xx passes.
    statuses: frozenset[int] | None = None

    def passes(self, status: int) -> bool:
        if self.statuses is None:
            return 200 <= status < 400
        return status in self.statuses


@dataclass(frozen=True, slots=True)
class PassiveHealthCheck:
    # Consecutive failed calls that eject a target; 0: never.
    failures: int = 5
    eject_s: float = 30.0
    max_eject_s: float = 300.0
    statuses: frozenset[int] = frozenset((502, 503, 504))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    # Tries after the first, each on another target.
    attempts: int = 2
    non_idempotent: bool = False
    on_statuses: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class RestBackend:
    """One version of a REST service as it serves: its target pool and how calls reach it."""

    # Where the worker keeps this pool's balancing state: "service id/version".
    key: str
    service_id: int
    version: int
    targets: tuple[RestTarget, ...]
    strategy: str = "weighted"
    # consistent_hash: "header", "client_address" or "path"; the header's lower-case name.
    hash_on: str = "client_address"
    hash_header: bytes | None = None
    strip_prefix: bool = True
    # Sent upstream in place of the route prefix (implies stripping it).
    replace_prefix: str | None = None
    # Static headers sent upstream (lower-case names), then the request rules.
    headers: HeaderList = field(default=(), repr=False)
    request_rules: HeaderRules = NO_HEADER_RULES
    response_rules: HeaderRules = NO_HEADER_RULES
    retries: RetryPolicy = RetryPolicy()
    active_check: ActiveHealthCheck | None = None
    passive_check: PassiveHealthCheck = PassiveHealthCheck()
    # Largest request body accepted; None: no limit (bodies are streamed).
    max_request_bytes: int | None = None
    websockets: bool = True

    def upstream_path(self, prefix: str, path: str) -> str:
        """The path sent upstream for a `path` under the service's route `prefix`, below the
        target's base path."""
        if self.replace_prefix is not None:
            rest = path[len(prefix) :]
            return (self.replace_prefix + rest) or "/"
        if self.strip_prefix:
            return path[len(prefix) :] or "/"
        return path


@dataclass(frozen=True, slots=True)
class RestService:
    """A REST service's serving versions: the published one and, during a canary release,
    a second one taking `canary_weight` percent of the calls."""

    primary: RestBackend
    canary: RestBackend | None = None
    canary_weight: int = 0

    def backends(self) -> tuple[RestBackend, ...]:
        return (self.primary,) if self.canary is None else (self.primary, self.canary)

    def version(self, number: int) -> RestBackend | None:
        for backend in self.backends():
            if backend.version == number:
                return backend
        return None
