"""Where a REST service's calls go: the `upstream` of a version of a service of kind `rest`.

These models are the declarative file's and the admin API's schema (strict: unknown fields are
refused). `config.tenancy` compiles them into the snapshot's `RestService`; docs/routing.md
describes every setting with an example.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from tollway.config.fields import Strict, UpstreamTimeoutsConfig, http_url, static_headers

Strategy = Literal["round_robin", "weighted", "least_connections", "consistent_hash"]

HashOn = Literal["header", "client_address", "path"]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers that frame a message or describe its hop: rewriting them would break the exchange.
_FRAMING = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te")
)

HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def header_name(value: str) -> str:
    """A header name the rules may touch: a valid token, not one that frames the message."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid header name")
    if value.lower() in _FRAMING:
        raise ValueError(f"{value!r} is set by the gateway and cannot be configured")
    return value


class RestTargetConfig(Strict):
    url: str = Field(description="http:// or https:// base URL of the upstream")
    weight: int = Field(1, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return http_url(value)


class HashConfig(Strict):
    """What a consistent-hash pool hashes to choose a target: the same key goes to the same
    target for as long as that target is in the pool."""

    on: HashOn = Field("client_address", description="header, client_address or path")
    header: HeaderName | None = Field(
        None,
        description="on: header: the header whose value is hashed (its absence falls back "
        "to the client address)",
    )

    @model_validator(mode="after")
    def _header_when_needed(self) -> HashConfig:
        if self.on == "header" and self.header is None:
            raise ValueError("on: header needs `header`, the name of the header to hash")
        if self.on != "header" and self.header is not None:
            raise ValueError("`header` is only for on: header")
        if self.header is not None:
            header_name(self.header)
        return self


class HeaderRulesConfig(Strict):
    """Changes to the headers of a message on its way through: `remove`, then `rename`, then
    `add` (which replaces any header of the same name)."""

    add: dict[HeaderName, str] = Field(default_factory=dict, description="name -> value")
    remove: list[HeaderName] = Field(default_factory=list)
    rename: dict[HeaderName, HeaderName] = Field(
        default_factory=dict, description="old name -> new name"
    )

    @field_validator("add")
    @classmethod
    def _check_add(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            header_name(name)
        return static_headers(value)

    @field_validator("remove")
    @classmethod
    def _check_remove(cls, value: list[str]) -> list[str]:
        return [header_name(name) for name in value]

    @field_validator("rename")
    @classmethod
    def _check_rename(cls, value: dict[str, str]) -> dict[str, str]:
        for old, new in value.items():
            header_name(old)
            header_name(new)
        return value


class ActiveHealthCheckConfig(Strict):
    """A probe each worker sends to every target, off the request path."""

    path: str = Field("/", description="path probed (under the target's base URL)")
    interval_s: float = Field(5.0, ge=0.1, le=3600)
    timeout_s: float = Field(2.0, gt=0, le=60)
    healthy_threshold: int = Field(
        2, ge=1, le=100, description="consecutive passing probes that bring a target back"
    )
    unhealthy_threshold: int = Field(
        3, ge=1, le=100, description="consecutive failing probes that take a target out"
    )
    statuses: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        None, description="answers that pass; default: any 2xx or 3xx"
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in " \r\n#"):
            raise ValueError("must be a path starting with / (a query string may follow)")
        return value


class PassiveHealthCheckConfig(Strict):
    """Ejection on the evidence of real calls: a target that fails `failures` calls in a row
    takes no calls for `eject_s` (doubling each time it fails again on its return, up to
    `max_eject_s`)."""

    failures: int = Field(5, ge=0, le=1000, description="0 turns passive checks off")
    eject_s: float = Field(30.0, gt=0, le=86400)
    max_eject_s: float = Field(300.0, gt=0, le=86400)
    statuses: list[Annotated[int, Field(ge=500, le=599)]] = Field(
        default_factory=lambda: [502, 503, 504],
        description="answers that count as a failure (besides connection errors and timeouts)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PassiveHealthCheckConfig:
        if self.max_eject_s < self.eject_s:
            raise ValueError("max_eject_s must be at least eject_s")
        return self


class HealthChecksConfig(Strict):
    active: ActiveHealthCheckConfig | None = Field(None, description="off unless given")
    passive: PassiveHealthCheckConfig = PassiveHealthCheckConfig()


class RetriesConfig(Strict):
    """Another target tries a call whose target failed before answering (connection refused
    or reset, timeout before the answer's head), as long as nothing has gone to the client."""

    attempts: int = Field(
        2, ge=0, le=10, description="tries after the first, each on another target"
    )
    non_idempotent: bool = Field(
        False, description="retry POST, PATCH and other non-idempotent methods as well"
    )
    on_statuses: list[Annotated[int, Field(ge=500, le=599)]] = Field(
        default_factory=list, description="answers retried elsewhere too, e.g. [502, 503, 504]"
    )


class TlsConfig(Strict):
    verify: bool = Field(True, description="verify the upstream's certificate and name")
    ca_file: str | None = Field(
        None, description="PEM file of a private CA to trust instead of the system's store"
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        if not self.verify and self.ca_file is not None:
            raise ValueError("ca_file is for verifying: it means nothing with verify: false")
        return self


class RestUpstreamConfig(Strict):
    """Where a REST service's calls go: a pool of targets and how they share the calls."""

    targets: list[RestTargetConfig] = Field(min_length=1, max_length=64)
    strategy: Strategy = Field(
        "weighted", description="round_robin, weighted, least_connections or consistent_hash"
    )
    hash: HashConfig | None = Field(None, description="strategy consistent_hash: what to hash")
    strip_prefix: bool = Field(
        True, description="drop the service's route prefix from the path sent upstream"
    )
    replace_prefix: str | None = Field(
        None, description="send this path prefix upstream instead of the service's route prefix"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="static extra headers sent upstream"
    )
    request_headers: HeaderRulesConfig = HeaderRulesConfig()
    response_headers: HeaderRulesConfig = HeaderRulesConfig()
    timeouts: UpstreamTimeoutsConfig = UpstreamTimeoutsConfig()
    tls: TlsConfig = TlsConfig()
    health_checks: HealthChecksConfig = HealthChecksConfig()
    retries: RetriesConfig = RetriesConfig()
    max_request_bytes: int | None = Field(
        None,
        gt=0,
        description="largest request body accepted (413 beyond); default: no limit, "
        "bodies are streamed",
    )
    websockets: bool = Field(True, description="pass protocol upgrades (WebSocket) through")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return static_headers(value)

    @field_validator("replace_prefix")
    @classmethod
    def _check_replacement(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)+", value):
            raise ValueError("must be a path like /api/v2 (no query string)")
        return value.rstrip("/") if value is not None else None

    @model_validator(mode="after")
    def _hash_with_its_strategy(self) -> RestUpstreamConfig:
        if self.hash is not None and self.strategy != "consistent_hash":
            raise ValueError("`hash` is only for strategy: consistent_hash")
        urls = [t.url for t in self.targets]
        if len(set(urls)) != len(urls):
            raise ValueError("targets: a URL is given twice (raise its weight instead)")
        return self
