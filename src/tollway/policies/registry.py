"""Policies by name: each is a config model (strict, so it is also the admin API's and the
console's schema) and a builder that makes the policy from that config and what the rest of the
configuration offers at compile time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tollway.policies.access_log import AccessLog, AccessLogConfig
from tollway.policies.base import Policy
from tollway.policies.budget import BudgetConfig, build_budget
from tollway.policies.config import PolicyConfig
from tollway.policies.key_auth import KeyAuth, KeyAuthConfig
from tollway.policies.rate_limit import RateLimitConfig, build_rate_limit
from tollway.policies.record import Record, RecordConfig, RecordWithBodies
from tollway.policies.subscription import Subscription, SubscriptionConfig
from tollway.policies.trace import Trace, TraceConfig

if TYPE_CHECKING:
    from tollway.config.snapshot import ClientKey, Tenancy
    from tollway.limits.alerts import EventSink
    from tollway.limits.counters import CounterStore


@dataclass(frozen=True, slots=True)
class CompileScope:
    """What a policy may take from the rest of the configuration when it is built."""

    keys: Mapping[bytes, ClientKey]
    # The store's services and subscriptions; None for a file-only gateway.
    tenancy: Tenancy | None = None
    # Whether traces are exported (an OTLP endpoint is configured).
    tracing: bool = False
    # Whether each request is logged as a JSON line (server.access_log).
    access_log: bool = False
    # The node's counter store for rate limits and budgets (None: a private one, for checks).
    counters: CounterStore | None = None
    # Where the worker records events such as budget alerts (None: the log).
    events: EventSink | None = None
    # Per compile: what policies that work together share (rate_limit and budget: a limiter).
    shared: dict[str, Any] = field(default_factory=dict)
    # Whether calls are recorded (serve with a recorder or metrics): `record` ends the chain.
    records: bool = False


@dataclass(frozen=True, slots=True)
class PolicyType:
    name: str
    config: type[PolicyConfig]
    build: Callable[[Any, CompileScope], Policy]
    description: str


def _key_auth(config: KeyAuthConfig, scope: CompileScope) -> Policy:
    return KeyAuth(scope.keys, frozenset(h.encode() for h in config.headers))


def _subscription(config: SubscriptionConfig, scope: CompileScope) -> Policy:
    if scope.tenancy is None:
        raise ValueError("the subscription policy needs the store's services (serve with a store)")
    return Subscription(scope.tenancy)


def _trace(config: TraceConfig, scope: CompileScope) -> Policy:
    return Trace()


def _access_log(config: AccessLogConfig, scope: CompileScope) -> Policy:
    return AccessLog()


def _record(config: RecordConfig, scope: CompileScope) -> Policy:
    from tollway.analytics.sink import worker_sink

    services = scope.tenancy.services.values() if scope.tenancy is not None else ()
    if any(service.capture is not None for service in services):
        return RecordWithBodies(worker_sink())
    return Record(worker_sink())


POLICY_TYPES: dict[str, PolicyType] = {
    t.name: t
    for t in (
        PolicyType(
            "key_auth",
            KeyAuthConfig,
            _key_auth,
            "the caller presents a configured client key; a key's model list is enforced",
        ),
        PolicyType(
            "subscription",
            SubscriptionConfig,
            _subscription,
            "an app calls a service only with an approved subscription to it",
        ),
        PolicyType(
            "rate_limit",
            RateLimitConfig,
            build_rate_limit,
            "requests and tokens per minute and concurrent requests per key, app, team, "
            "service or model, exact across workers and nodes",
        ),
        PolicyType(
            "budget",
            BudgetConfig,
            build_budget,
            "money per day, week or month per key, app or team: a hard stop, and alerts",
        ),
        PolicyType(
            "trace",
            TraceConfig,
            _trace,
            "an OpenTelemetry span per call (GenAI conventions), exported over OTLP",
        ),
        PolicyType(
            "access_log",
            AccessLogConfig,
            _access_log,
            "one JSON line per request on standard error",
        ),
        PolicyType(
            "record",
            RecordConfig,
            _record,
            "a record of every call (and the metrics derived from it), off the hot path",
        ),
    )
}
