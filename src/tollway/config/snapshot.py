"""The immutable runtime configuration: what the data plane reads on every request.

The control plane builds it (`config.compile`); a worker holds exactly one at a time in its
`SnapshotHolder` and swaps in a new one with a single attribute assignment, so a request sees
one consistent version. Everything here is precomputed for the hot path: header bytes, hashed
keys, compiled model patterns, route tables and policy chains.

Nothing here changes while a snapshot serves. What does change per request (round-robin
counters, and later in-flight counts and breaker states) lives beside the snapshot in each
worker, keyed by route and deployment (proxy/balancer.py).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tollway.config.rest_service import RestService
from tollway.config.transport import HttpLimits, Origin, UpstreamTimeouts
from tollway.llm.catalog import Catalog, ModelInfo
from tollway.llm.client_apis import ClientApi
from tollway.llm.context_fit import ContextFit
from tollway.providers.registry import ProviderType
from tollway.providers.sigv4 import SigV4Signer

if TYPE_CHECKING:
    from tollway.analytics.redaction import BodyCapture
    from tollway.config.mcp_upstream import McpUpstream
    from tollway.config.prompt_service import PromptService
    from tollway.config.rest_operations import RestOperation
    from tollway.policies.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class ProviderRuntime:
    name: str
    origin: Origin
    # Auth and static headers, ready to write. Holds the provider's secret: never logged.
    headers: tuple[tuple[bytes, bytes], ...] = field(repr=False)
    timeouts: UpstreamTimeouts
    max_idle: int
    host: bytes
    kind: ProviderType
    api_version: str | None = None
    ca_file: str | None = None
    # Signs each request (AWS SigV4) when the provider wants a signature, not a key.
    signer: SigV4Signer | None = field(default=None, repr=False)
    # Bedrock: its AWS region, and the same provider at its agent-runtime host, where the
    # rerank models are served (a runtime of its own, so that it has its own connections).
    region: str | None = None
    agent_runtime: ProviderRuntime | None = field(default=None, repr=False)
    # Batches whose every line goes here are passed to the provider's own Batch API.
    batch_passthrough: bool = False

    def path(self, endpoint: str, model: str = "") -> bytes:
        """The upstream path of an endpoint given relative to the base URL (with the model
        for providers that put it in the path)."""
        return self.kind.path(self.origin.base_path, endpoint, model, self.api_version).encode()

    def serves_natively(self, api: ClientApi) -> bool:
        """Whether this provider speaks the client's API as it is (no translation)."""
        kind = self.kind
        if api.family == "anthropic":
            return kind.anthropic_native
        if api.family == "cohere":  # rerank: Cohere's shape, which compatible servers share
            return kind.openai_native or kind.name == "cohere"
        return kind.openai_native

    def has_endpoint(self, api: ClientApi) -> bool:
        """Whether a provider that speaks the client's API serves this endpoint of it (the
        OpenAI-compatible family differ in which they have; Anthropic's have both)."""
        return api.family == "anthropic" or api.endpoint in self.kind.quirks.endpoints

    def serves(self, api: ClientApi) -> bool:
        """Whether this provider takes the client's call as it is: its API and endpoint."""
        return self.serves_natively(api) and self.has_endpoint(api)


class PoolOwner(Protocol):
    """What an upstream connection pool is keyed and built by: a provider, or a REST target."""

    @property
    def name(self) -> str: ...

    @property
    def origin(self) -> Origin: ...

    @property
    def timeouts(self) -> UpstreamTimeouts: ...

    @property
    def max_idle(self) -> int: ...

    @property
    def ca_file(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ServiceRuntime:
    """A published service: the models it grants (kind ai) or where its calls go (kind rest),
    behind its route prefix."""

    id: int
    name: str
    team_id: int
    kind: str
    prefix: str
    models: frozenset[str] = frozenset()
    # Kind ai: how kept conversations are fitted to the models it names (instead of each
    # model's own fitting).
    context: Mapping[str, ContextFit] = field(default_factory=dict)
    # Kind rest: the serving version(s), their targets and how calls reach them.
    rest: RestService | None = None
    # Kind prompt: the serving version(s), their templates compiled.
    prompt: PromptService | None = None
    # Kind mcp: the upstream MCP server.
    mcp: McpUpstream | None = None
    # Kind rest: the published version's operations offered as MCP tools, by tool name.
    operations: Mapping[str, RestOperation] = field(default_factory=dict)
    # Kind rest: the published version's OpenAPI document as JSON (b"": none).
    document: bytes = field(default=b"", repr=False)

    # The published version's number, and how its calls' bodies are recorded (None: not).
    version: int = 0
    capture: BodyCapture | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: ProviderRuntime
    # The provider's name for the model; None sends the client's name unchanged.
    model: str | None
    # Limits and prices from the catalog, when it knows the model.
    info: ModelInfo | None = None
    # How it is named in answers' headers, records and pins: "provider/model" unless set.
    label: str = ""
    # Its share of the group's calls (weighted strategies); 0: only when the others fail.
    weight: int = 1
    # Its own limits, for the usage-based strategy's headroom (None: unlimited).
    rpm: int | None = None
    tpm: int | None = None
    # Request heads for native calls, by (client API name, stream), up to the per-request
    # headers: method, path, host, the provider's headers, content type and accept. Absent
    # when the path depends on the model the client names (a '*' route to Azure).
    native_heads: Mapping[tuple[str, bool], bytes] = field(default_factory=dict, repr=False)

    def model_for(self, route_name: str, requested: str) -> str:
        """The model name this deployment sends for a call that asked for `requested` on the
        route `route_name`: its own, else the name asked for (a '*' route, or the model's
        own name), else the route's (a fallback model's deployment)."""
        return self.model or (requested if route_name in ("*", requested) else route_name)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a deployment's circuit breaker opens, and for how long (proxy/breaker.py)."""

    consecutive_failures: int = 5
    error_rate: float = 0.5
    min_calls: int = 20
    window_s: float = 30.0
    cooldown_s: float = 10.0
    max_cooldown_s: float = 120.0


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """How a model's deployments share its calls and stand in for one another."""

    strategy: str = "round_robin"
    # Further attempts after the first, across the group's deployments and its fallbacks.
    retries: int = 2
    # Retries may add at most this share of the group's calls (a token bucket).
    retry_budget: float = 0.2
    backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    # An upstream's Retry-After longer than this is not waited for: the next deployment is.
    retry_after_cap_s: float = 10.0
    breaker: BreakerSettings = BreakerSettings()
    # Public model names tried, in order, when every deployment of this one failed.
    fallbacks: tuple[str, ...] = ()
    # The model a request too long for this one's context window goes to.
    context_window_fallback: str | None = None
    # The model a request refused on content policy goes to.
    content_policy_fallback: str | None = None
    # Whether a request may pin a deployment or pick the strategy by header.
    client_choice: bool = False


DEFAULT_ROUTING = RoutingPolicy()
NO_FITTING = ContextFit()


@dataclass(frozen=True, slots=True)
class ModelRoute:
    name: str
    deployments: tuple[Deployment, ...]
    routing: RoutingPolicy = DEFAULT_ROUTING
    # How conversations the gateway keeps are fitted to the model.
    context: ContextFit = NO_FITTING


@dataclass(frozen=True, slots=True)
class ClientKey:
    name: str
    # Model names and globs the key may use; None for all.
    models: tuple[str, ...] | None = None
    # The same, compiled: exact names, and one pattern for the globs.
    _exact: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    # A key of an app (from the store): whose calls it carries, and its lifetime. A key
    # declared in the file's `keys:` belongs to no app and is subject to no subscription.
    app: AppRef | None = None
    key_id: int = 0
    expires_at: float | None = None  # seconds since the epoch
    revoked: bool = False
    # Client networks the key may be used from; None for anywhere.
    networks: tuple[Network, ...] | None = None

    @classmethod
    def build(
        cls,
        name: str,
        models: tuple[str, ...] | None,
        *,
        app: AppRef | None = None,
        key_id: int = 0,
        expires_at: float | None = None,
        revoked: bool = False,
        networks: tuple[Network, ...] | None = None,
    ) -> ClientKey:
        exact: frozenset[str] = frozenset()
        pattern = None
        if models is not None:
            exact = frozenset(m for m in models if not any(c in m for c in "*?["))
            globs = [m for m in models if m not in exact]
            # fnmatch's own translation, so globs mean what fnmatchcase says they mean.
            if globs:
                pattern = re.compile("|".join(fnmatch.translate(g) for g in globs))
        return cls(name, models, exact, pattern, app, key_id, expires_at, revoked, networks)

    def may_use(self, model: str) -> bool:
        if self.models is None or model in self._exact:
            return True
        return self._pattern is not None and self._pattern.match(model) is not None

    def may_connect_from(self, address: str) -> bool:
        if self.networks is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AppRef:
    """The app a key belongs to, and its team: what a call is accounted to."""

    id: int
    name: str
    team_id: int
    team: str
    # The MCP tools the app may see and call (names or patterns): allowed (None: every one
    # its subscriptions offer), less the denied.
    tools_allow: tuple[str, ...] | None = None
    tools_deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tenancy:
    """Who may call what (from the store): published services, which services grant each
    model, and every app's subscriptions by status. Absent for a file-only gateway."""

    services: Mapping[int, ServiceRuntime]
    # Public model name -> the ai services (ids) that grant it.
    model_services: Mapping[str, tuple[int, ...]]
    # (app id, service id) -> pending, approved, rejected, cancelled or revoked.
    subscriptions: Mapping[tuple[int, int], str]

    def status(self, app_id: int, service_id: int) -> str | None:
        return self.subscriptions.get((app_id, service_id))

    def grants(self, app_id: int, model: str) -> bool:
        """Whether one of the app's approved subscriptions grants `model`."""
        return any(
            self.subscriptions.get((app_id, service)) == "approved"
            for service in self.model_services.get(model, ())
        )


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """What answers one method on one path: a handler the worker knows by name, the client
    API it speaks (its errors and answers are written in that API's format), and the policy
    chain its calls run."""

    handler: str
    pipeline: Pipeline
    api: ClientApi | None = None
    # The service whose prefix the route is under, if any: its calls are that service's.
    service: ServiceRuntime | None = None


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Exact paths are one dictionary lookup; the few parameterised paths (`/v1/models/{id}`)
    are matched by prefix after that."""

    exact: Mapping[str, Mapping[str, RouteEntry]]
    prefixes: tuple[tuple[str, Mapping[str, RouteEntry]], ...] = ()


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    version: int
    models: Mapping[str, ModelRoute]
    # Routes every model name not in `models` (the '*' entry, or `serve --upstream`).
    wildcard: ModelRoute | None
    # SHA-256 digest of the key -> key. Only digests are kept in memory.
    keys: Mapping[bytes, ClientKey]
    auth_required: bool
    routes: RouteTable
    # The policy chain of model calls (each route holds its own; most share this one).
    pipeline: Pipeline
    limits: HttpLimits
    drain_timeout_s: float
    created: int
    catalog: Catalog
    tenancy: Tenancy | None = None

    def route(self, model: str) -> ModelRoute | None:
        found = self.models.get(model)
        return found if found is not None else self.wildcard


class SnapshotHolder:
    """A worker's current RuntimeConfig; replaced whole, never mutated."""

    __slots__ = ("current",)

    def __init__(self, current: RuntimeConfig) -> None:
        self.current = current
