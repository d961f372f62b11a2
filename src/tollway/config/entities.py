"""The control plane's entities in the declarative configuration: users, teams, apps and
their keys, services with their versions, and subscriptions. `tollway apply` stores them,
`tollway export` writes them (see docs/admin.md)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from tollway.config.fields import KeyMaterial, ModelRef, Strict
from tollway.config.mcp_server import McpServerSpec
from tollway.config.prompt_api import PromptApiSpec
from tollway.config.rest_openapi import OpenApiConfig
from tollway.config.rest_upstream import RestUpstreamConfig

# Names of teams, apps and services: lower case, so that two names never differ by case alone.
Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$"),
    Field(description="lower-case letters, digits, '.', '_' and '-'; at most 63 characters"),
]


# A user's login name (an e-mail address is fine).
UserName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._@+-]{0,127}$"),
    Field(description="lower-case letters, digits and . _ @ + -; at most 128 characters"),
]


PlatformRole = Literal["admin", "member"]


TeamRole = Literal["team_admin", "developer", "viewer"]


ServiceKind = Literal["ai", "rest", "prompt", "mcp"]


Visibility = Literal["public", "private"]


Approval = Literal["auto", "manual"]


VersionStatus = Literal["draft", "published", "canary", "deprecated", "retired"]


SubscriptionStatus = Literal["pending", "approved", "rejected", "cancelled", "revoked"]


# Route prefixes the gateway keeps for itself.
RESERVED_PREFIXES = ("/v1", "/admin", "/healthz", "/readyz", "/metrics", "/mcp")


class TeamConfig(Strict):
    """A team (tenant): it owns apps and services; its members hold a role in it."""

    description: str = Field("", max_length=2000)
    members: dict[UserName, TeamRole] = Field(
        default_factory=dict, description="user name -> team_admin, developer or viewer"
    )


class UserConfig(Strict):
    display_name: str = Field("", max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    platform_role: PlatformRole = "member"
    disabled: bool = False
    password_hash: SecretStr | None = Field(
        None,
        description="an argon2 hash (written by `tollway export --include-secrets`)",
        json_schema_extra={"writeOnly": True},
    )

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("$argon2"):
            raise ValueError("must be an argon2 hash ($argon2id$...)")
        return value


def normalise_network(value: str) -> str:
    """An IP address or CIDR range in its canonical form (host bits cleared)."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR range") from None


class AppKeyConfig(KeyMaterial):
    """An app's API key."""

    name: str = Field(min_length=1, max_length=100)
    prefix: str | None = Field(
        None, max_length=16, description="the key's first characters, shown to tell keys apart"
    )
    models: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = Field(
        None, description="model names or globs this key may use; default: all its app may"
    )
    cidrs: list[str] | None = Field(
        None, description="client addresses (CIDR ranges) this key may be used from"
    )
    expires_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None

    @field_validator("cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [normalise_network(v) for v in value]


class ToolAccessConfig(Strict):
    """Which MCP tools an app may see and call, of those its subscriptions offer it: names
    as its MCP endpoint lists them (`sentiment`, `docs.search`) or fnmatch patterns."""

    allow: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = Field(
        None, description="the tools it may use; default: every tool its subscriptions offer"
    )
    deny: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, description="tools it may never use (before allow)"
    )


class AppConfig(Strict):
    """An API consumer owned by a team; its keys carry the right to call."""

    description: str = Field("", max_length=2000)
    keys: list[AppKeyConfig] = Field(default_factory=list)
    tools: ToolAccessConfig | None = Field(
        None, description="the MCP tools it may use (default: all its subscriptions offer)"
    )


class ContextConfig(Strict):
    """How a conversation the gateway keeps (stored responses, conversations) is fitted to
    this model before it is sent (llm/context_fit.py)."""

    max_input_tokens: int | None = Field(
        None,
        gt=0,
        description="the input budget; default: the smallest context window of the model's "
        "deployments (model catalog) less reserve_output_tokens; unknown windows: no fitting",
    )
    reserve_output_tokens: int = Field(
        4096, ge=0, description="room left for the answer when the budget comes from a window"
    )
    keep_first_turns: int = Field(
        0, ge=0, description="the conversation's first turns always kept (its task, say)"
    )
    summary_model: str | None = Field(
        None,
        description="a model of this configuration (a cheap one) that summarises the turns "
        "left out; the summary takes their place. None: they are left out",
    )
    summary_tokens: int = Field(
        1024, gt=0, description="the most a summary may take of the input budget"
    )
    select: Literal["recent", "relevant"] = Field(
        "recent",
        description="which earlier turns are kept: the most recent (stable for prompt caches), "
        "or the most relevant to the latest turn",
    )


# What a version may hold: the fields of ServiceSpec.
SPEC_FIELDS = ("models", "upstream", "openapi", "prompt", "context", "mcp")


class ServiceSpec(Strict):
    """What one version of a service serves: models (kind ai), an upstream (kind rest), or a
    prompt template and its model (kind prompt)."""

    models: list[ModelRef] | None = Field(
        None, description="kind ai: the public model names this service grants"
    )
    upstream: RestUpstreamConfig | None = Field(None, description="kind rest: where calls go")
    openapi: OpenApiConfig | None = Field(
        None,
        description="kind rest: its OpenAPI document (the catalog shows it; its operations "
        "are MCP tools)",
    )
    prompt: PromptApiSpec | None = Field(
        None, description="kind prompt: the template, its input and output, and its model"
    )
    mcp: McpServerSpec | None = Field(
        None, description="kind mcp: the upstream MCP server whose tools it offers"
    )
    context: dict[ModelRef, ContextConfig] | None = Field(
        None,
        description="kind ai: how conversations kept on each model named here are fitted to it "
        "when called through this service (instead of the model's own `context`)",
    )

    @field_validator("models")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("name at least one model")
            if len(set(value)) != len(value):
                raise ValueError("names a model twice")
        return value

    def problem_for(self, kind: ServiceKind) -> str | None:
        """Why this content does not fit a service of `kind`, or None."""
        given = {name for name in SPEC_FIELDS if getattr(self, name) is not None}
        if kind == "ai" and ("models" not in given or given - {"models", "context"}):
            return "a version of an ai service gives models (and no upstream or prompt)"
        if kind == "rest" and ("upstream" not in given or given - {"upstream", "openapi"}):
            return "a version of a rest service gives an upstream (and no models or prompt)"
        if kind == "prompt" and given != {"prompt"}:
            return "a version of a prompt service gives a prompt (and no models or upstream)"
        if kind == "mcp" and given != {"mcp"}:
            return "a version of an mcp service gives mcp (an upstream MCP server) only"
        return None

    @classmethod
    def taken_from(cls, source: object) -> ServiceSpec:
        """The spec of `source`'s fields of these names (a version's input, a config)."""
        return cls(**{name: getattr(source, name, None) for name in SPEC_FIELDS})

    @model_validator(mode="after")
    def _context_of_its_models(self) -> ServiceSpec:
        if self.context:
            strangers = sorted(set(self.context) - set(self.models or ()))
            if strangers:
                raise ValueError(f"context names models this version does not grant: {strangers}")
        return self


class ServiceVersionConfig(ServiceSpec):
    status: VersionStatus = "draft"
    notes: str = Field("", max_length=2000)
    weight: int | None = Field(
        None,
        ge=0,
        le=100,
        description="status canary: the percentage of the service's calls this version takes",
    )

    @model_validator(mode="after")
    def _weight_of_a_canary(self) -> ServiceVersionConfig:
        if self.weight is not None and self.status != "canary":
            raise ValueError("`weight` is for a version with status canary")
        return self


def check_route_prefix(value: str) -> str:
    """A route prefix as /name[/more], outside the paths the gateway keeps for itself."""
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise ValueError("must look like /name or /name/more (letters, digits, . _ ~ -)")
    first = "/" + value.split("/")[1]
    if first.lower() in RESERVED_PREFIXES:
        raise ValueError(f"{first} is reserved by the gateway")
    return value


RoutePrefix = Annotated[str, Field(min_length=2, max_length=200)]


class ServiceConfig(Strict):
    """A service owned by a team: models (ai) or an upstream (rest) behind a route prefix."""

    kind: ServiceKind
    route_prefix: RoutePrefix
    visibility: Visibility = "private"
    approval: Approval = "manual"
    description: str = Field("", max_length=2000)
    versions: dict[int, ServiceVersionConfig] = Field(default_factory=dict)

    @field_validator("route_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return check_route_prefix(value)

    @model_validator(mode="after")
    def _versions(self) -> ServiceConfig:
        for number, version in self.versions.items():
            if number < 1:
                raise ValueError("version numbers start at 1")
            problem = version.problem_for(self.kind)
            if problem:
                raise ValueError(f"versions.{number}: {problem}")
        published = [n for n, v in self.versions.items() if v.status == "published"]
        if len(published) > 1:
            raise ValueError(f"only one version may be published (versions {published})")
        canaries = [n for n, v in self.versions.items() if v.status == "canary"]
        if canaries and self.kind in ("ai", "mcp"):
            raise ValueError("canary releases are for services of kind rest or prompt")
        if len(canaries) > 1:
            raise ValueError(f"only one version may be the canary (versions {canaries})")
        return self


def _qualified(value: str) -> str:
    team, _, name = value.partition("/")
    pattern = r"[a-z0-9][a-z0-9._-]{0,62}"
    if not (re.fullmatch(pattern, team) and re.fullmatch(pattern, name)):
        raise ValueError("must be TEAM/NAME")
    return value


class SubscriptionConfig(Strict):
    """An app's subscription to a service; both named TEAM/NAME."""

    app: str
    service: str
    status: SubscriptionStatus = "approved"

    @field_validator("app", "service")
    @classmethod
    def _check_names(cls, value: str) -> str:
        return _qualified(value)
