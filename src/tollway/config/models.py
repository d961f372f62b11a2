"""The declarative configuration: typed, strict models (an unknown field is an error).

These are the control plane's models. `config.compile` turns a validated `GatewayConfig` into
the immutable runtime snapshot the data plane reads.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tollway.config.entities import (
    AppConfig,
    ContextConfig,
    Name,
    ServiceConfig,
    SubscriptionConfig,
    TeamConfig,
    UserConfig,
    UserName,
)
from tollway.config.fields import (
    KeyMaterial,
    ProviderTimeoutsConfig,
    Strict,
    env_name,
    http_url,
    static_headers,
)
from tollway.llm.files_api import BATCH_API_TYPES
from tollway.policies.budget import BudgetConfig
from tollway.policies.rate_limit import RateLimitConfig
from tollway.policies.registry import POLICY_TYPES
from tollway.providers.registry import TYPES, base_url_for


class HttpLimitsConfig(Strict):
    """What a client may send. Defaults are documented in docs/configuration.md."""

    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_upload_bytes: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="the largest upload to the model APIs' multipart forms (image edits, "
        "audio transcriptions), which pass through as they arrive",
    )
    max_files_bytes: int = Field(
        10 * 1024 * 1024 * 1024,
        gt=0,
        description="the most one owner's files (an app's, or a configured key's) may hold "
        "together in the Files API; an upload that would pass it is refused",
    )
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
    access_log: bool = Field(
        False, description="one JSON line per request on standard error (off by default)"
    )


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
    agent_runtime_base_url: str | None = Field(
        None,
        description="bedrock only: the agent runtime's URL, where rerank models are served "
        "(by default the base URL's bedrock-agent-runtime twin; give it for a VPC endpoint)",
    )
    aws_access_key_id_env: str | None = Field(
        None, description="bedrock: environment variable with the AWS access key id (SigV4)"
    )
    aws_secret_access_key_env: str | None = Field(
        None, description="bedrock: environment variable with the AWS secret access key"
    )
    aws_session_token_env: str | None = Field(
        None, description="bedrock: environment variable with an AWS session token"
    )
    timeouts: ProviderTimeoutsConfig = ProviderTimeoutsConfig()
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
    batch_passthrough: bool | None = Field(
        None,
        strict=True,
        description="pass batches whose every line goes to this provider to its own Batch "
        "API (at its batch price) instead of running their lines in the gateway; default: "
        "on for the types that have one (openai), which alone may turn it on",
    )

    @field_validator(
        "api_key_env", "aws_access_key_id_env", "aws_secret_access_key_env", "aws_session_token_env"
    )
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return env_name(value)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return static_headers(value)

    @model_validator(mode="before")
    @classmethod
    def _sdk_forms(cls, data: Any) -> Any:
        """A base URL in the form the provider's own SDK takes becomes the form the gateway's
        paths need (see providers.registry.base_url_for)."""
        if isinstance(data, dict) and isinstance(data.get("base_url"), str):
            kind = data.get("type", "openai_compatible")
            if isinstance(kind, str) and _looks_like_http(data["base_url"]):
                data = {**data, "base_url": base_url_for(kind, data["base_url"])}
        return data

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
        elif (
            self.region
            or self.aws_access_key_id_env
            or self.aws_secret_access_key_env
            or self.agent_runtime_base_url
        ):
            raise ValueError(
                "region, agent_runtime_base_url and aws_* keys are for bedrock providers only"
            )
        if (
            self.base_url is None
            and TYPES[self.type].default_base_url is None
            and self.type != "bedrock"
        ):
            raise ValueError(f"base_url is required for the provider type {self.type!r}")
        if (self.api_version is not None) != (self.type == "azure"):
            raise ValueError("api_version is required for an azure provider, and only there")
        if self.batch_passthrough and self.type not in BATCH_API_TYPES:
            raise ValueError(
                f"batch_passthrough: the provider type {self.type!r} has no Batch API the "
                f"gateway passes batches to (only {', '.join(sorted(BATCH_API_TYPES))})"
            )
        return self

    @property
    def passes_batches(self) -> bool:
        """Whether batches go to this provider's own Batch API (see batch_passthrough)."""
        return self.type in BATCH_API_TYPES and self.batch_passthrough is not False

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
    name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="how answers' headers and records name it, and how a client pins it; "
        "default: provider/model",
    )
    weight: int = Field(
        1, ge=0, le=1000, description="its share of the calls; 0: used only when the others fail"
    )
    rpm: int | None = Field(None, gt=0, description="its own requests per minute (usage strategy)")
    tpm: int | None = Field(None, gt=0, description="its own tokens per minute (usage strategy)")


class BreakerConfig(Strict):
    consecutive_failures: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1)
    min_calls: int = Field(20, ge=1, description="calls in the window before error_rate counts")
    window_s: float = Field(30.0, gt=0)
    cooldown_s: float = Field(10.0, gt=0, description="first cooldown; doubles per failed probe")
    max_cooldown_s: float = Field(120.0, gt=0)


class RoutingConfig(Strict):
    """How a model's deployments share its calls and stand in for one another
    (docs/routing.md). Resilience is on by default."""

    strategy: Literal[
        "round_robin", "weighted", "least_busy", "lowest_latency", "cost", "usage"
    ] = "round_robin"
    retries: int = Field(2, ge=0, le=10, description="further attempts after the first")
    retry_budget: float = Field(
        0.2, ge=0, le=1, description="retries add at most this share of the group's calls"
    )
    backoff_s: float = Field(0.05, ge=0, description="base of the exponential backoff (jittered)")
    max_backoff_s: float = Field(2.0, ge=0)
    retry_after_cap_s: float = Field(
        10.0, ge=0, description="an upstream's Retry-After longer than this is not waited for"
    )
    breaker: BreakerConfig = BreakerConfig()
    client_choice: bool = Field(
        False,
        description="let a request pin a deployment (x-tollway-deployment) or pick the "
        "strategy (x-tollway-strategy)",
    )


class ModelConfig(Strict):
    deployments: list[DeploymentConfig] = Field(min_length=1)
    routing: RoutingConfig = RoutingConfig()
    fallbacks: list[str] = Field(
        default_factory=list,
        description="public model names tried in order when every deployment of this one failed",
    )
    context_window_fallback: str | None = Field(
        None, description="the model a request too long for this one's context window goes to"
    )
    content_policy_fallback: str | None = Field(
        None, description="the model a request refused on content policy goes to"
    )
    context: ContextConfig = ContextConfig()

    @model_validator(mode="after")
    def _names(self) -> ModelConfig:
        names = [d.name for d in self.deployments if d.name]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"deployment names must differ: {', '.join(twice)}")
        return self

    def labels(self) -> list[str]:
        """Each deployment's label: its name, else provider/model (the provider alone when the
        model is the client's), with #2, #3... on repeats
        (the balancer keys its state by label, so two alike deployments stay apart)."""
        taken = {d.name for d in self.deployments if d.name}
        labels: list[str] = []
        for d in self.deployments:
            label = d.name
            if not label:
                base = label = f"{d.provider}/{d.model}" if d.model else d.provider
                n = 1
                while label in taken:
                    n += 1
                    label = f"{base}#{n}"
                taken.add(label)
            labels.append(label)
        return labels


class ClientKeyConfig(KeyMaterial):
    """A client key (an operator's: it belongs to no app)."""

    name: str = Field(min_length=1)
    models: list[str] | None = Field(
        None, description="model names (or globs such as 'gpt-4o*') this key may use; default: all"
    )


class CatalogEntryConfig(Strict):
    """A model's limits and prices (USD per million tokens), added to or overriding the
    shipped catalog."""

    provider: str = Field(description="the provider type serving it, e.g. vllm or openai")
    mode: Literal[
        "chat",
        "completion",
        "embedding",
        "image",
        "speech",
        "transcription",
        "moderation",
        "rerank",
    ] = "chat"
    context_window: int = Field(gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    input: Decimal = Field(ge=0)
    output: Decimal | None = Field(None, ge=0)
    cached_input: Decimal | None = Field(None, ge=0)
    cache_write: Decimal | None = Field(None, ge=0)
    reasoning: Decimal | None = Field(None, ge=0)
    audio_input: Decimal | None = Field(
        None, ge=0, description="USD per million audio tokens in, where priced apart from text"
    )
    audio_output: Decimal | None = Field(
        None, ge=0, description="USD per million audio tokens out, where priced apart from text"
    )
    per_image: Decimal | None = Field(None, ge=0, description="USD per image generated")
    per_second: Decimal | None = Field(None, ge=0, description="USD per second of audio heard")
    per_character: Decimal | None = Field(
        None, ge=0, description="USD per character of text spoken"
    )
    per_search_unit: Decimal | None = Field(
        None, ge=0, description="USD per search unit (a rerank query over up to 100 documents)"
    )


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
    rate_limits: RateLimitConfig | None = Field(
        None,
        description="the rate_limit policy's settings; in the default chain after key_auth "
        "and subscription (see docs/metering.md)",
    )
    budgets: BudgetConfig | None = Field(
        None,
        description="the budget policy's settings; in the default chain after rate_limit "
        "(see docs/metering.md)",
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
                # rate_limit and budget may take their settings from their own sections.
                if settings or name not in ("rate_limit", "budget"):
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
            for other in (
                *model.fallbacks,
                model.context_window_fallback,
                model.content_policy_fallback,
            ):
                if other is not None and other not in self.models:
                    raise ValueError(
                        f"models.{model_name}: falls back to {other!r}, which is not a model here"
                    )
            summary = model.context.summary_model
            if summary is not None and summary not in self.models:
                raise ValueError(
                    f"models.{model_name}.context.summary_model: {summary!r} is not a model here"
                )
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


def _looks_like_http(url: str) -> bool:
    """Only http(s) URLs are rewritten; anything else is left for the field's own check."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
