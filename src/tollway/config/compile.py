"""Compiling validated config models into the immutable `RuntimeConfig` snapshot."""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from tollway import __version__
from tollway.config import tenancy as tenancy_compile
from tollway.config.fitting import context_fit
from tollway.config.load import ConfigError
from tollway.config.models import (
    DeploymentConfig,
    GatewayConfig,
    ModelConfig,
    ProviderConfig,
    ProviderCredentials,
)
from tollway.config.snapshot import (
    BreakerSettings,
    ClientKey,
    Deployment,
    ModelRoute,
    ProviderRuntime,
    RouteEntry,
    RouteTable,
    RoutingPolicy,
    RuntimeConfig,
    ServiceRuntime,
    Tenancy,
)
from tollway.config.transport import HttpLimits, Origin, UpstreamTimeouts, head_prefix
from tollway.llm.catalog import Catalog, ModelInfo, shipped
from tollway.llm.client_apis import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    CLIENT_APIS,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    ClientApi,
)
from tollway.llm.files_api import OPENAI_BATCHES, OPENAI_FILES
from tollway.llm.media_apis import MEDIA_APIS, MEDIA_ROUTES
from tollway.llm.realtime import OPENAI_REALTIME
from tollway.observability import tracing
from tollway.policies.base import Policy
from tollway.policies.pipeline import EMPTY, Pipeline
from tollway.policies.registry import POLICY_TYPES, CompileScope
from tollway.providers.bedrock_media import agent_runtime_url
from tollway.providers.registry import TYPES
from tollway.providers.sigv4 import SigV4Signer

if TYPE_CHECKING:
    from tollway.limits.alerts import EventSink
    from tollway.limits.counters import CounterStore
    from tollway.policies.config import PolicyConfig
    from tollway.store.state import ControlPlaneState

USER_AGENT = f"tollway/{__version__}".encode()


def hash_key(key: str) -> str:
    """The hex SHA-256 under which a client key is stored and compared."""
    return hashlib.sha256(key.encode()).hexdigest()


def compile_config(
    config: GatewayConfig,
    environ: Mapping[str, str],
    *,
    version: int = 1,
    source: str = "config",
    state: ControlPlaneState | None = None,
    counters: CounterStore | None = None,
    events: EventSink | None = None,
    records: bool = False,
) -> RuntimeConfig:
    """Build the snapshot; secrets are resolved from `environ` here and only here.

    With the store's `state`, its providers, models and prices are served, its apps' keys
    accepted, and its services and subscriptions enforced; the file's server settings and
    `keys:` (operators' keys) still apply."""
    if state is not None:
        config = config.model_copy(
            update={
                "providers": {**config.providers, **state.providers},
                "models": {**config.models, **state.models},
                "catalog": {**config.catalog, **state.catalog},
            }
        )
    problems: list[str] = []
    providers = {
        name: _provider(name, p, environ, problems) for name, p in config.providers.items()
    }

    keys: dict[bytes, ClientKey] = {}
    for i, key in enumerate(config.keys):
        if key.env_var is not None:
            secret = environ.get(key.env_var)
            if not secret:
                field = "api_key_env" if key.api_key_env else "key_env"
                problems.append(f"keys[{i}].{field}: environment variable {key.env_var} is not set")
                continue
            digest = hashlib.sha256(secret.encode()).digest()
        else:
            assert key.key_sha256 is not None
            digest = bytes.fromhex(key.key_sha256)
        if digest in keys:
            problems.append(f"keys[{i}]: the same key is also configured as {keys[digest].name!r}")
        keys[digest] = ClientKey.build(
            key.name, tuple(key.models) if key.models is not None else None
        )
    if problems:
        raise ConfigError(source, problems)
    tenancy = None

    overrides = (
        ModelInfo(model=name, **entry.model_dump()) for name, entry in config.catalog.items()
    )
    catalog = Catalog([*shipped(), *overrides])
    models: dict[str, ModelRoute] = {}
    for name, model in config.models.items():
        deployments = tuple(
            _deployment(providers[d.provider], d, label, name, catalog)
            for d, label in zip(model.deployments, model.labels(), strict=True)
        )
        fitting = context_fit(model.context, deployments)
        models[name] = ModelRoute(name, deployments, _routing(model), fitting)
    wildcard = models.pop("*", None)
    if state is not None:
        keys.update(tenancy_compile.app_keys(state))
        tenancy = tenancy_compile.tenancy(state, models, environ)

    try:
        scope = CompileScope(
            keys,
            tenancy,
            tracing=tracing.enabled(environ),
            access_log=config.server.access_log,
            counters=counters,
            events=events,
            records=records,
        )
        pipeline = Pipeline(_policies(config, scope))
    except ValueError as exc:
        raise ConfigError(source, [f"policies: {exc}"]) from None
    limits = HttpLimits(**config.server.limits.model_dump())
    return RuntimeConfig(
        version=version,
        models=MappingProxyType(models),
        wildcard=wildcard,
        keys=MappingProxyType(keys),
        # A store-backed gateway always wants a key: its tenants' keys come and go.
        auth_required=bool(config.keys) or state is not None,
        routes=_routes(pipeline, tenancy),
        pipeline=pipeline,
        limits=limits,
        drain_timeout_s=config.server.drain_timeout_s,
        created=int(time.time()),
        catalog=catalog,
        tenancy=tenancy,
    )


def _policies(config: GatewayConfig, scope: CompileScope) -> tuple[Policy, ...]:
    """The calls' policy chain: as configured, else key_auth when keys exist, and
    subscription when the store's tenancy applies."""
    configured = config.policies
    if configured is None:
        configured = []
        if scope.keys or scope.tenancy is not None:
            configured.append({"key_auth": {}})
        if scope.tenancy is not None:
            configured.append({"subscription": {}})
        for name, section in _SECTIONS.items():
            if getattr(config, section) is not None:
                configured.append({name: {}})
    if scope.tracing and not any("trace" in entry for entry in configured):
        # First, so that the span covers the whole call, refusals included.
        configured = [{"trace": {}}, *configured]
    if scope.access_log and not any("access_log" in entry for entry in configured):
        configured = [*configured, {"access_log": {}}]
    if scope.records and not any("record" in entry for entry in configured):
        # Last, so that the record sees what every other policy made of the call.
        configured = [*configured, {"record": {}}]
    chain = []
    for entry in configured:
        if isinstance(entry, str):
            entry = {entry: {}}
        [(name, settings)] = entry.items()
        policy_type = POLICY_TYPES[name]
        chain.append(policy_type.build(_settings(config, name, settings), scope))
    for name, section in _SECTIONS.items():
        if getattr(config, section) is not None and not any(name in e for e in configured):
            raise ValueError(f"`{section}` is configured but the chain has no {name} policy")
    return tuple(chain)


# Policies whose settings may be given as a section of their own in the file.
_SECTIONS = {"rate_limit": "rate_limits", "budget": "budgets"}


def _settings(config: GatewayConfig, name: str, settings: object) -> PolicyConfig:
    """A chain entry's settings: its own, or its section's (`rate_limits`, `budgets`)."""
    section = getattr(config, _SECTIONS[name]) if name in _SECTIONS else None
    if section is not None:
        if settings:
            raise ValueError(f"{name}: give its settings once, here or in `{_SECTIONS[name]}`")
        validated: PolicyConfig = section
        return validated
    return POLICY_TYPES[name].config.model_validate(settings or {})


_MODEL_APIS = {
    "/v1/chat/completions": OPENAI_CHAT,
    "/v1/completions": OPENAI_COMPLETIONS,
    "/v1/embeddings": OPENAI_EMBEDDINGS,
    "/v1/responses": OPENAI_RESPONSES,
    "/v1/messages": ANTHROPIC_MESSAGES,
    "/v1/messages/count_tokens": ANTHROPIC_COUNT_TOKENS,
    **MEDIA_ROUTES,
}


def _handler(api: ClientApi) -> str:
    # Responses calls may be stored by the gateway (proxy/handlers/responses.py).
    return "create_response" if api is OPENAI_RESPONSES else "model_call"


def _stored_responses(pipeline: Pipeline, service: ServiceRuntime | None) -> dict[str, RouteEntry]:
    entry = RouteEntry("stored_response", pipeline, OPENAI_RESPONSES, service)
    return {"GET": entry, "DELETE": entry}


def _conversations(pipeline: Pipeline, service: ServiceRuntime | None) -> dict[str, RouteEntry]:
    entry = RouteEntry("conversations", pipeline, OPENAI_RESPONSES, service)
    return {"GET": entry, "POST": entry, "DELETE": entry}


def _mcp(pipeline: Pipeline, service: ServiceRuntime | None) -> dict[str, RouteEntry]:
    """An MCP endpoint: POST for messages, GET for the older HTTP+SSE transport's stream."""
    entry = RouteEntry("mcp", pipeline, None, service)
    return {"POST": entry, "GET": entry}


def _routes(pipeline: Pipeline, tenancy: Tenancy | None) -> RouteTable:
    """The data plane's routes: the OpenAI and Anthropic model APIs, the model list and the
    health probes; and under each published service's prefix, its model APIs (kind ai) or
    everything, forwarded (kind rest)."""
    exact: dict[str, dict[str, RouteEntry]] = {
        path: {"POST": RouteEntry(_handler(api), pipeline, api)}
        for path, api in _MODEL_APIS.items()
    }
    exact["/v1/models"] = {"GET": RouteEntry("list_models", pipeline, OPENAI_CHAT)}
    exact["/v1/responses"]["GET"] = RouteEntry("responses_websocket", EMPTY)
    exact["/v1/realtime"] = {"GET": RouteEntry("realtime", pipeline, OPENAI_REALTIME)}
    exact["/healthz"] = {"GET": RouteEntry("healthz", EMPTY)}
    # Clients probe the base URL (Claude Code sends `HEAD /` as it starts): a liveness answer.
    exact["/"] = {"GET": RouteEntry("healthz", EMPTY)}
    exact["/readyz"] = {"GET": RouteEntry("readyz", EMPTY)}
    # The Files API, served by the gateway itself (no model: key auth and request phase).
    files = RouteEntry("files", pipeline, OPENAI_FILES)
    exact["/v1/files"] = {"POST": files, "GET": files}
    # The Batches API, run by the gateway: its lines are calls of the batch's key.
    batches = RouteEntry("batches", pipeline, OPENAI_BATCHES)
    exact["/v1/batches"] = {"POST": batches, "GET": batches}
    prefixes: list[tuple[str, dict[str, RouteEntry]]] = [
        ("/v1/files/", {"GET": files, "DELETE": files}),
        ("/v1/batches/", {"GET": batches, "POST": batches}),
        ("/v1/models/", {"GET": RouteEntry("retrieve_model", pipeline, OPENAI_CHAT)}),
        ("/v1/responses/", _stored_responses(pipeline, None)),
        ("/v1/conversations/", _conversations(pipeline, None)),
    ]
    exact["/v1/conversations"] = _conversations(pipeline, None)
    if tenancy is not None:
        # The MCP endpoint of everything an app is subscribed to (proxy/handlers/mcp.py).
        exact["/mcp"] = _mcp(pipeline, None)
    for service in tenancy.services.values() if tenancy is not None else ():
        if service.kind == "ai":
            for path, api in _MODEL_APIS.items():
                exact[service.prefix + path] = {
                    "POST": RouteEntry(_handler(api), pipeline, api, service)
                }
            prefixes.append(
                (service.prefix + "/v1/responses/", _stored_responses(pipeline, service))
            )
            prefixes.append(
                (service.prefix + "/v1/conversations/", _conversations(pipeline, service))
            )
            exact[service.prefix + "/v1/conversations"] = _conversations(pipeline, service)
            exact[service.prefix + "/v1/models"] = {
                "GET": RouteEntry("list_models", pipeline, OPENAI_CHAT, service)
            }
            exact[service.prefix + "/v1/responses"]["GET"] = RouteEntry(
                "responses_websocket", EMPTY, None, service
            )
            exact[service.prefix + "/v1/realtime"] = {
                "GET": RouteEntry("realtime", pipeline, OPENAI_REALTIME, service)
            }
        elif service.kind == "prompt":
            exact[service.prefix] = {
                "POST": RouteEntry("prompt_api", pipeline, OPENAI_CHAT, service)
            }
            exact[service.prefix + "/openapi.json"] = {
                "GET": RouteEntry("prompt_api_document", pipeline, OPENAI_CHAT, service)
            }
            exact[service.prefix + "/mcp"] = _mcp(pipeline, service)
        elif service.kind == "mcp":
            # An upstream MCP server: its tools at its own endpoint, and at /mcp.
            exact[service.prefix + "/mcp"] = _mcp(pipeline, service)
        else:
            everything = {"*": RouteEntry("rest_proxy", pipeline, None, service)}
            exact[service.prefix] = everything
            exact[service.prefix + "/"] = everything
            prefixes.append((service.prefix + "/", everything))
        if service.kind != "ai" and (service.kind != "rest" or service.operations):
            # Every service with tools at /mcp{prefix} too: outside the prefix, so that it
            # never hides a REST service's own path.
            exact["/mcp" + service.prefix] = _mcp(pipeline, service)
    # Longest first: a service at /a/b wins over one at /a for /a/b/...
    prefixes.sort(key=lambda item: -len(item[0]))
    return RouteTable(
        exact=MappingProxyType({path: MappingProxyType(m) for path, m in exact.items()}),
        prefixes=tuple((prefix, MappingProxyType(m)) for prefix, m in prefixes),
    )


def _deployment(
    provider: ProviderRuntime,
    deployment: DeploymentConfig,
    label: str,
    public_name: str,
    catalog: Catalog,
) -> Deployment:
    model = deployment.model
    upstream_model = model or (None if public_name == "*" else public_name)
    heads: dict[tuple[str, bool], bytes] = {}
    if upstream_model is not None or not provider.kind.deployment_paths:
        for api in (*CLIENT_APIS.values(), *MEDIA_APIS.values()):
            if not provider.serves(api):
                continue
            path = provider.path(api.endpoint, upstream_model or "")
            for stream in (False, True) if api.can_stream else (False,):
                heads[(api.name, stream)] = head_prefix(
                    b"POST", path, provider.host, provider.headers + api.head_headers(stream)
                )
    return Deployment(
        provider,
        model,
        info=catalog.find(provider.kind.name, model or public_name),
        label=label,
        weight=deployment.weight,
        rpm=deployment.rpm,
        tpm=deployment.tpm,
        native_heads=MappingProxyType(heads),
    )


def _routing(model: ModelConfig) -> RoutingPolicy:
    r = model.routing
    b = r.breaker
    return RoutingPolicy(
        strategy=r.strategy,
        retries=r.retries,
        retry_budget=r.retry_budget,
        backoff_s=r.backoff_s,
        max_backoff_s=r.max_backoff_s,
        retry_after_cap_s=r.retry_after_cap_s,
        breaker=BreakerSettings(
            b.consecutive_failures,
            b.error_rate,
            b.min_calls,
            b.window_s,
            b.cooldown_s,
            b.max_cooldown_s,
        ),
        fallbacks=tuple(model.fallbacks),
        context_window_fallback=model.context_window_fallback,
        content_policy_fallback=model.content_policy_fallback,
        client_choice=r.client_choice,
    )


def _provider(
    name: str, provider: ProviderConfig, environ: Mapping[str, str], problems: list[str]
) -> ProviderRuntime:
    origin = Origin.from_url(provider.resolved_base_url)
    kind = TYPES[provider.type]
    headers: list[tuple[bytes, bytes]] = [(b"user-agent", USER_AGENT), *kind.fixed_headers]
    secrets = provider.credentials
    api_key = _secret(name, "api_key", provider.api_key_env, secrets, environ, problems)
    if api_key is not None:
        headers.extend(kind.auth_headers(api_key))
    for header, value in provider.headers.items():
        headers.append((header.lower().encode(), value.encode()))
    if provider.ca_file is not None:
        try:
            ssl.create_default_context(cafile=provider.ca_file)
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"providers.{name}.ca_file: cannot load {provider.ca_file}: {exc}")
    signer = None
    key_id = _secret(
        name, "aws_access_key_id", provider.aws_access_key_id_env, secrets, environ, problems
    )
    secret_key = _secret(
        name,
        "aws_secret_access_key",
        provider.aws_secret_access_key_env,
        secrets,
        environ,
        problems,
    )
    if key_id is not None and secret_key is not None:
        assert provider.region is not None
        token = _secret(
            name, "aws_session_token", provider.aws_session_token_env, secrets, environ, problems
        )
        signer = SigV4Signer(key_id, secret_key, provider.region, "bedrock", token)
    t = provider.timeouts
    runtime = ProviderRuntime(
        name=name,
        origin=origin,
        headers=tuple(headers),
        timeouts=UpstreamTimeouts(
            t.connect_s, t.first_byte_s, t.idle_s, t.pool_idle_s, t.max_response_bytes, t.total_s
        ),
        max_idle=provider.max_idle_connections,
        host=origin.host_header,
        kind=kind,
        api_version=provider.api_version,
        signer=signer,
        ca_file=provider.ca_file,
        region=provider.region,
        batch_passthrough=provider.passes_batches,
    )
    if kind.rerank is None:
        return runtime
    # Rerank lives on the agent runtime: the same credentials (its SigV4 service is
    # `bedrock` too), another host, and a name of its own for its connection pool.
    assert provider.region is not None  # a bedrock provider's, checked at load
    second = Origin.from_url(
        provider.agent_runtime_base_url
        or agent_runtime_url(provider.resolved_base_url, provider.region)
    )
    twin = replace(runtime, name=f"{name} (agent runtime)", origin=second, host=second.host_header)
    return replace(runtime, agent_runtime=twin)


def _secret(
    provider: str,
    name: str,
    variable: str | None,
    secrets: ProviderCredentials | None,
    environ: Mapping[str, str],
    problems: list[str],
) -> str | None:
    """A provider secret: the value kept in the store (`credentials`), else the environment
    variable named by `<name>_env`; a problem when a named variable is not set."""
    held = getattr(secrets, name, None) if secrets is not None else None
    if held is not None:
        value: str = held.get_secret_value()
        return value
    if variable is None:
        return None
    value = environ.get(variable, "")
    if not value:
        problems.append(
            f"providers.{provider}.{name}_env: environment variable {variable} is not set"
        )
        return None
    if "\r" in value or "\n" in value:
        problems.append(
            f"providers.{provider}.{name}_env: the value of {variable} contains a line break"
        )
        return None
    return value
