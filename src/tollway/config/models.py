"""The declarative configuration: typed, strict models (an unknown field is an error).

These are the control plane's models. `config.compile` turns a validated `GatewayConfig` into
the immutable runtime snapshot the data plane reads.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from tollway.policies.registry import POLICY_TYPES
from tollway.providers.registry import TYPES

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError("must be the name of an environment variable (letters, digits, '_')")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    return value.rstrip("/")


def _static_headers(value: dict[str, str]) -> dict[str, str]:
    for name, header_value in value.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"{name!r} is not a valid header name")
        if "\r" in header_value or "\n" in header_value:
            raise ValueError(f"the value of {name!r} contains a line break")
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise ValueError(f"{name!r} is set by the gateway and cannot be configured")
    return value


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
ServiceKind = Literal["ai", "rest"]
Visibility = Literal["public", "private"]
Approval = Literal["auto", "manual"]
VersionStatus = Literal["draft", "published", "deprecated", "retired"]
SubscriptionStatus = Literal["pending", "approved", "rejected", "cancelled", "revoked"]
# Route prefixes the gateway keeps for itself.
RESERVED_PREFIXES = ("/v1", "/admin", "/healthz", "/readyz", "/metrics")


class HttpLimitsConfig(Strict):
    """What a client may send. Defaults are documented in docs/configuration.md."""

    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_headers: int = Field(100, gt=0)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(60.0, gt=0)
    keepalive_timeout_s: float = Field(75.0, gt=0)
    send_timeout_s: float = Field(60.0, gt=0)
    max_pipelined: int = Field(16, ge=1)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int | None = Field(None, ge=1, description="default: the CPU count")
    drain_timeout_s: float = Field(30.0, ge=0)
    limits: HttpLimitsConfig = HttpLimitsConfig()
    allow_unauthenticated: bool = Field(
        False, description="serve without client keys on a non-loopback address"
    )


class UpstreamTimeoutsConfig(Strict):
    connect_s: float = Field(10.0, gt=0)
    first_byte_s: float = Field(300.0, gt=0)
    idle_s: float = Field(120.0, gt=0)
    pool_idle_s: float = Field(60.0, gt=0)
    max_response_bytes: int = Field(64 * 1024 * 1024, gt=0)


class ProviderCredentials(Strict):
    """Secrets given as values rather than environment variables: what the store keeps
    encrypted, and what `tollway export --include-secrets` writes. Never shown by the admin API."""

    api_key: SecretStr | None = Field(None, json_schema_extra={"writeOnly": True})
    aws_access_key_id: SecretStr | None = Field(None, json_schema_extra={"writeOnly": True})
    aws_secret_access_key: SecretStr | None = Field(None, json_schema_extra={"writeOnly": True})
    aws_session_token: SecretStr | None = Field(None, json_schema_extra={"writeOnly": True})

    @field_validator("*")
    @classmethod
    def _one_line(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not secret:
                raise ValueError("must not be empty")
            if "\r" in secret or "\n" in secret:
                raise ValueError("must not contain a line break")
        return value

    def names(self) -> list[str]:
        """The names of the secrets that are set."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class ProviderConfig(Strict):
    """An upstream: its wire format (`type`), address and credentials."""

    type: Literal[
        "openai",
        "openai_compatible",
        "azure",
        "anthropic",
        "gemini",
        "vertex",
        "cohere",
        "bedrock",
        "groq",
        "together",
        "fireworks",
        "deepseek",
        "openrouter",
        "xai",
        "perplexity",
        "mistral",
        "vllm",
        "ollama",
        "lmstudio",
    ] = "openai_compatible"
    base_url: str | None = None
    api_key_env: str | None = Field(
        None, description="name of the environment variable holding the provider's API key"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="static extra headers sent upstream"
    )
    api_version: str | None = Field(None, description="azure only: the api-version query")
    region: str | None = Field(None, description="bedrock only: the AWS region")
    aws_access_key_id_env: str | None = Field(
        None, description="bedrock: environment variable with the AWS access key id (SigV4)"
    )
    aws_secret_access_key_env: str | None = Field(
        None, description="bedrock: environment variable with the AWS secret access key"
    )
    aws_session_token_env: str | None = Field(
        None, description="bedrock: environment variable with an AWS session token"
    )
    timeouts: UpstreamTimeoutsConfig = UpstreamTimeoutsConfig()
    max_idle_connections: int = Field(256, ge=0)
    ca_file: str | None = Field(
        None,
        description="PEM file of the CA that signed an https upstream's certificate, "
        "for private CAs; default: the system's trust store",
    )
    credentials: ProviderCredentials | None = Field(
        None,
        description="secrets as values (kept encrypted by the store); "
        "each excludes its *_env counterpart",
    )

    @field_validator(
        "api_key_env", "aws_access_key_id_env", "aws_secret_access_key_env", "aws_session_token_env"
    )
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return _static_headers(value)

    @model_validator(mode="after")
    def _base_url_for_type(self) -> ProviderConfig:
        secrets = self.credentials or ProviderCredentials()
        for name in secrets.names():
            if getattr(self, f"{name}_env") is not None:
                raise ValueError(f"give either credentials.{name} or {name}_env, not both")
        if secrets.aws_access_key_id or secrets.aws_secret_access_key or secrets.aws_session_token:
            if self.type != "bedrock":
                raise ValueError("aws_* credentials are for bedrock providers only")
            if (self.aws_access_key_id_env or secrets.aws_access_key_id) is None or (
                self.aws_secret_access_key_env or secrets.aws_secret_access_key
            ) is None:
                raise ValueError("give both the AWS access key id and the secret access key")
        if self.type == "bedrock":
            if not self.region:
                raise ValueError("region is required for a bedrock provider")
            if (self.aws_access_key_id_env is None) != (self.aws_secret_access_key_env is None):
                raise ValueError("give both aws_access_key_id_env and aws_secret_access_key_env")
        elif self.region or self.aws_access_key_id_env or self.aws_secret_access_key_env:
            raise ValueError("region and aws_* keys are for bedrock providers only")
        if (
            self.base_url is None
            and TYPES[self.type].default_base_url is None
            and self.type != "bedrock"
        ):
            raise ValueError(f"base_url is required for the provider type {self.type!r}")
        if (self.api_version is not None) != (self.type == "azure"):
            raise ValueError("api_version is required for an azure provider, and only there")
        return self

    @property
    def resolved_base_url(self) -> str:
        if self.base_url is None and self.type == "bedrock":
            return f"https://bedrock-runtime.{self.region}.amazonaws.com"
        url = self.base_url or TYPES[self.type].default_base_url
        assert url is not None
        return url


class DeploymentConfig(Strict):
    provider: str
    model: str | None = Field(
        None, description="the provider's model name; default: the name the client asked for"
    )


class ModelConfig(Strict):
    deployments: list[DeploymentConfig] = Field(min_length=1)


class ClientKeyConfig(Strict):
    """A client key, given as its SHA-256 (hex) or as an environment variable holding it."""

    name: str = Field(min_length=1)
    key_sha256: str | None = None
    key_env: str | None = None
    models: list[str] | None = Field(
        None, description="model names (or globs such as 'gpt-4o*') this key may use; default: all"
    )

    @field_validator("key_env")
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("key_sha256")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.fullmatch(value):
            raise ValueError("must be 64 lower-case hex digits (tollway hash-key prints it)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ClientKeyConfig:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 and key_env")
        return self


class CatalogEntryConfig(Strict):
    """A model's limits and prices (USD per million tokens), added to or overriding the
    shipped catalog."""

    provider: str = Field(description="the provider type serving it, e.g. vllm or openai")
    mode: Literal["chat", "completion", "embedding"] = "chat"
    context_window: int = Field(gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    input: Decimal = Field(ge=0)
    output: Decimal | None = Field(None, ge=0)
    cached_input: Decimal | None = Field(None, ge=0)
    cache_write: Decimal | None = Field(None, ge=0)
    reasoning: Decimal | None = Field(None, ge=0)


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


class AppKeyConfig(Strict):
    """An app's API key, given as its SHA-256 (hex) or as an environment variable holding it."""

    name: str = Field(min_length=1, max_length=100)
    key_sha256: str | None = None
    key_env: str | None = None
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

    @field_validator("key_env")
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("key_sha256")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.fullmatch(value):
            raise ValueError("must be 64 lower-case hex digits (tollway hash-key prints it)")
        return value

    @field_validator("cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [normalise_network(v) for v in value]

    @model_validator(mode="after")
    def _exactly_one(self) -> AppKeyConfig:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 and key_env")
        return self


class AppConfig(Strict):
    """An API consumer owned by a team; its keys carry the right to call."""

    description: str = Field("", max_length=2000)
    keys: list[AppKeyConfig] = Field(default_factory=list)


class RestTargetConfig(Strict):
    url: str = Field(description="http:// or https:// base URL of the upstream")
    weight: int = Field(1, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class RestUpstreamConfig(Strict):
    """Where a REST service's calls go: one or more targets, balanced by weight."""

    targets: list[RestTargetConfig] = Field(min_length=1, max_length=64)
    strip_prefix: bool = Field(
        True, description="drop the service's route prefix from the path sent upstream"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="static extra headers sent upstream"
    )
    timeouts: UpstreamTimeoutsConfig = UpstreamTimeoutsConfig()

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return _static_headers(value)


ModelRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ServiceSpec(Strict):
    """What one version of a service serves: models (kind ai) or an upstream (kind rest)."""

    models: list[ModelRef] | None = Field(
        None, description="kind ai: the public model names this service grants"
    )
    upstream: RestUpstreamConfig | None = Field(None, description="kind rest: where calls go")

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
        if kind == "ai" and (self.models is None or self.upstream is not None):
            return "a version of an ai service gives models (and no upstream)"
        if kind == "rest" and (self.upstream is None or self.models is not None):
            return "a version of a rest service gives an upstream (and no models)"
        return None


class ServiceVersionConfig(ServiceSpec):
    status: VersionStatus = "draft"
    notes: str = Field("", max_length=2000)


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


class GatewayConfig(Strict):
    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(
        default_factory=dict,
        description="public model name -> deployments; '*' routes every other name",
    )
    keys: list[ClientKeyConfig] = Field(default_factory=list)
    catalog: dict[str, CatalogEntryConfig] = Field(
        default_factory=dict, description="model name -> limits and prices"
    )
    policies: list[str | dict[str, dict[str, Any] | None]] | None = Field(
        None,
        description="the policy chain of model calls, in order: policy names, or "
        "{name: settings}; default: key_auth when keys are configured",
    )
    # The control plane's entities; `tollway apply` stores them (see docs/admin.md).
    users: dict[UserName, UserConfig] = Field(default_factory=dict)
    teams: dict[Name, TeamConfig] = Field(default_factory=dict)
    apps: dict[Name, dict[Name, AppConfig]] = Field(
        default_factory=dict, description="team -> app name -> app"
    )
    services: dict[Name, dict[Name, ServiceConfig]] = Field(
        default_factory=dict, description="team -> service name -> service"
    )
    subscriptions: list[SubscriptionConfig] = Field(default_factory=list)

    @field_validator("policies")
    @classmethod
    def _check_policies(
        cls, value: list[str | dict[str, dict[str, Any] | None]] | None
    ) -> list[str | dict[str, dict[str, Any] | None]] | None:
        """Each entry names one registered policy; its settings are checked by that policy's
        own config model. Entries come out as {name: settings}."""
        if value is None:
            return None
        entries: list[str | dict[str, dict[str, Any] | None]] = []
        for i, entry in enumerate(value):
            if isinstance(entry, str):
                entry = {entry: {}}
            if len(entry) != 1:
                raise ValueError(f"[{i}]: give one policy per entry, as name: settings")
            [(name, settings)] = entry.items()
            policy_type = POLICY_TYPES.get(name)
            if policy_type is None:
                known = ", ".join(sorted(POLICY_TYPES))
                raise ValueError(f"[{i}]: unknown policy {name!r} (known: {known})")
            try:
                policy_type.config.model_validate(settings or {})
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}"
                    for e in exc.errors()
                )
                raise ValueError(f"[{i}].{name}: {problems}") from None
            entries.append({name: settings or {}})
        return entries

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        for model_name, model in self.models.items():
            if not model_name.strip():
                raise ValueError("a model name must not be empty")
            for i, deployment in enumerate(model.deployments):
                if deployment.provider not in self.providers:
                    known = ", ".join(sorted(self.providers)) or "none"
                    raise ValueError(
                        f"models.{model_name}.deployments[{i}].provider: unknown provider "
                        f"{deployment.provider!r} (configured: {known})"
                    )
        names = [key.name for key in self.keys]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"keys: duplicate key names: {', '.join(duplicates)}")
        pairs = [(s.app, s.service) for s in self.subscriptions]
        twice = sorted({f"{a} -> {b}" for a, b in pairs if pairs.count((a, b)) > 1})
        if twice:
            raise ValueError(f"subscriptions: declared twice: {', '.join(twice)}")
        return self
