"""Compiling the store's tenancy into the snapshot: apps' keys, published services, and every
app's subscriptions, so that the data plane decides who may call what without asking the
store."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import orjson

from tollway.analytics.redaction import BodyCapture
from tollway.config.fitting import context_fit
from tollway.config.mcp_upstream import McpUpstream
from tollway.config.prompt_service import PromptService, PromptVersion
from tollway.config.rest_operations import RestOperation, operations_of
from tollway.config.rest_service import (
    NO_HEADER_RULES,
    ActiveHealthCheck,
    HeaderList,
    HeaderRules,
    PassiveHealthCheck,
    RestBackend,
    RestService,
    RestTarget,
    RetryPolicy,
)
from tollway.config.rest_upstream import HeaderRulesConfig
from tollway.config.snapshot import AppRef, ClientKey, ModelRoute, ServiceRuntime, Tenancy
from tollway.config.transport import Origin, UpstreamTimeouts

if TYPE_CHECKING:
    from tollway.config.mcp_server import McpServerSpec
    from tollway.config.prompt_api import PromptApiSpec
    from tollway.store.state import ControlPlaneState, PublishedVersion, ServiceState


def app_keys(state: ControlPlaneState) -> dict[bytes, ClientKey]:
    """The apps' keys by digest; revoked and expired ones stay, so that they answer 401 with
    the reason rather than as unknown."""
    keys: dict[bytes, ClientKey] = {}
    for digest, key in state.keys.items():
        app = state.apps[key.app_id]
        team = state.teams[app.team_id]
        keys[digest] = ClientKey.build(
            f"{team.name}/{app.name}/{key.name}",
            key.models,
            app=AppRef(
                app.id,
                f"{team.name}/{app.name}",
                team.id,
                team.name,
                app.tools_allow,
                app.tools_deny,
            ),
            key_id=key.id,
            expires_at=key.expires_at.timestamp() if key.expires_at is not None else None,
            revoked=key.revoked_at is not None,
            networks=key.cidrs,
        )
    return keys


def tenancy(
    state: ControlPlaneState,
    models: Mapping[str, ModelRoute],
    environ: Mapping[str, str] | None = None,
) -> Tenancy:
    services: dict[int, ServiceRuntime] = {}
    model_services: dict[str, list[int]] = {}
    for service in state.services.values():
        runtime = _recorded(_service(state, service, models, environ or {}), service)
        if runtime is None:
            continue
        services[service.id] = runtime
        for model in runtime.models:
            model_services.setdefault(model, []).append(service.id)
    return Tenancy(
        services=MappingProxyType(services),
        model_services=MappingProxyType({m: tuple(ids) for m, ids in model_services.items()}),
        subscriptions=MappingProxyType({pair: s.status for pair, s in state.subscriptions.items()}),
    )


def _service(
    state: ControlPlaneState,
    service: ServiceState,
    models: Mapping[str, ModelRoute],
    environ: Mapping[str, str],
) -> ServiceRuntime | None:
    """The service as it serves: its published version, or None (nothing published)."""
    published = service.published
    if published is None:
        return None
    team = state.teams[service.team_id]
    name = f"{team.name}/{service.name}"
    if service.kind == "ai":
        return ServiceRuntime(
            service.id,
            name,
            service.team_id,
            "ai",
            service.route_prefix,
            models=frozenset(published.models or ()),
            context=MappingProxyType(
                {
                    model: context_fit(setting, route.deployments if route else ())
                    for model, setting in (published.context or {}).items()
                    for route in [models.get(model)]
                }
            ),
        )
    if service.kind == "prompt":
        return _prompt_service(service, name, published)
    if service.kind == "mcp":
        if published.mcp is None:
            return None
        return ServiceRuntime(
            service.id,
            name,
            service.team_id,
            "mcp",
            service.route_prefix,
            mcp=mcp_upstream(published.mcp, environ),
        )
    primary = _backend(service.id, published)
    if primary is None:
        return None
    canary = _backend(service.id, service.canary) if service.canary is not None else None
    return ServiceRuntime(
        service.id,
        name,
        service.team_id,
        "rest",
        service.route_prefix,
        rest=RestService(primary, canary, service.canary_weight if canary is not None else 0),
        operations=_operations(published),
        document=orjson.dumps(published.openapi.document) if published.openapi else b"",
    )


def _operations(published: PublishedVersion) -> Mapping[str, RestOperation]:
    """The operations of the published version's OpenAPI document offered as MCP tools."""
    openapi = published.openapi
    if openapi is None or not openapi.mcp:
        return MappingProxyType({})
    return operations_of(openapi.document, openapi.allow, openapi.deny)


def _prompt_service(
    service: ServiceState, name: str, published: PublishedVersion
) -> ServiceRuntime | None:
    if published.prompt is None:
        return None
    primary = prompt_version(published.number, published.prompt)
    canary = (
        prompt_version(service.canary.number, service.canary.prompt)
        if service.canary is not None and service.canary.prompt is not None
        else None
    )
    return ServiceRuntime(
        service.id,
        name,
        service.team_id,
        "prompt",
        service.route_prefix,
        # Called through the chat API as the model `prompt:NAME` (or `prompt:TEAM/NAME`).
        models=frozenset((f"prompt:{service.name}", f"prompt:{name}")),
        prompt=PromptService(primary, canary, service.canary_weight if canary else 0),
    )


def mcp_upstream(spec: McpServerSpec, environ: Mapping[str, str]) -> McpUpstream:
    """An MCP server as the data plane reaches it: its token read from the environment now (a
    missing one sends none: the server's refusal says so on each call)."""
    headers = list(spec.headers.items())
    token = spec.bearer_token
    if token is None and spec.bearer_token_env:
        token = environ.get(spec.bearer_token_env)
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    env: dict[str, str] = {}
    if spec.transport == "stdio":
        # Only what the version gives: a path to find programs, a home, and what it names.
        home = spec.cwd or "/"
        env = {"PATH": environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home}
        env.update({"LANG": "C.UTF-8", **spec.env})
        env.update({name: environ[name] for name in spec.pass_env if name in environ})
    return McpUpstream(
        spec.transport,
        spec.url or "",
        tuple(headers),
        tuple(spec.allow) if spec.allow is not None else None,
        tuple(spec.deny),
        spec.timeout_s,
        MappingProxyType(dict(spec.tools)) if spec.tools is not None else None,
        spec.on_tool_change == "hide",
        tuple(spec.command or ()),
        spec.cwd,
        tuple(env.items()),
        spec.max_memory_mb,
        _confinement(spec) if spec.transport == "stdio" and spec.sandbox else None,
    )


def _confinement(spec: McpServerSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a stdio server may read (its program's directory too) and change (beyond cwd)."""
    read = list(spec.read_paths)
    program = (spec.command or [""])[0]
    if os.path.isabs(program):
        read.append(os.path.dirname(program))
    return tuple(read), tuple(spec.write_paths)


def prompt_version(number: int, spec: PromptApiSpec) -> PromptVersion:
    """A prompt API's version as the data plane serves it: its template parsed and its
    schemas compiled (once, here)."""
    return PromptVersion(
        number,
        spec.template(),
        spec.output(),
        spec.model,
        MappingProxyType(spec.parameters.model_dump(exclude_none=True)),
        MappingProxyType(spec.model_dump(mode="json", exclude_none=True, exclude={"tests"})),
    )


def _backend(service_id: int, version: PublishedVersion) -> RestBackend | None:
    """One serving version of a REST service, ready for the data plane."""
    upstream = version.upstream
    if upstream is None:
        return None
    t = upstream.timeouts
    timeouts = UpstreamTimeouts(
        t.connect_s, t.first_byte_s, t.idle_s, t.pool_idle_s, t.max_response_bytes
    )
    tls = upstream.tls
    targets = []
    for i, target in enumerate(upstream.targets):
        origin = Origin.from_url(target.url)
        targets.append(
            RestTarget(
                f"service:{service_id}:{version.number}:{i}",
                origin,
                timeouts,
                origin.host_header,
                target.weight,
                ca_file=tls.ca_file,
                tls_verify=tls.verify,
                url=target.url,
                seed=int.from_bytes(hashlib.blake2b(target.url.encode(), digest_size=8).digest()),
            )
        )
    checks = upstream.health_checks
    active = checks.active
    passive = checks.passive
    hashing = upstream.hash
    retries = upstream.retries
    return RestBackend(
        key=f"{service_id}/{version.number}",
        service_id=service_id,
        version=version.number,
        targets=tuple(targets),
        strategy=upstream.strategy,
        hash_on=hashing.on if hashing is not None else "client_address",
        hash_header=hashing.header.lower().encode()
        if hashing is not None and hashing.header is not None
        else None,
        strip_prefix=upstream.strip_prefix,
        replace_prefix=upstream.replace_prefix,
        headers=_header_list(upstream.headers),
        request_rules=_rules(upstream.request_headers),
        response_rules=_rules(upstream.response_headers),
        retries=RetryPolicy(
            retries.attempts, retries.non_idempotent, frozenset(retries.on_statuses)
        ),
        active_check=ActiveHealthCheck(
            active.path,
            active.interval_s,
            active.timeout_s,
            active.healthy_threshold,
            active.unhealthy_threshold,
            frozenset(active.statuses) if active.statuses is not None else None,
        )
        if active is not None
        else None,
        passive_check=PassiveHealthCheck(
            passive.failures, passive.eject_s, passive.max_eject_s, frozenset(passive.statuses)
        ),
        max_request_bytes=upstream.max_request_bytes,
        websockets=upstream.websockets,
    )


def _header_list(headers: Mapping[str, str]) -> HeaderList:
    return tuple((k.lower().encode(), v.encode()) for k, v in headers.items())


def _rules(rules: HeaderRulesConfig) -> HeaderRules:
    if not (rules.add or rules.remove or rules.rename):
        return NO_HEADER_RULES
    return HeaderRules(
        remove=frozenset(name.lower().encode() for name in rules.remove),
        rename=MappingProxyType(
            {old.lower().encode(): new.lower().encode() for old, new in rules.rename.items()}
        ),
        add=_header_list(rules.add),
    )


def services_by_prefix(tenancy: Tenancy) -> Mapping[str, ServiceRuntime]:
    return {s.prefix: s for s in tenancy.services.values()}


def _recorded(runtime: ServiceRuntime | None, service: ServiceState) -> ServiceRuntime | None:
    """The serving version's number, and the service's body recording (redaction patterns
    compiled once here), on its runtime."""
    if runtime is None or service.published is None:
        return runtime
    recording = service.recording
    capture = None
    if recording is not None and recording.bodies:
        capture = BodyCapture.build(recording.max_body_bytes, recording.redact)
    return dataclasses.replace(runtime, version=service.published.number, capture=capture)
