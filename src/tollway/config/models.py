"""The declarative configuration: typed, strict models (an unknown field is an error).

These are the control plane's models. `config.compile` turns a validated `GatewayConfig` into
the immutable runtime snapshot the data plane reads.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollway.providers.registry import TYPES

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError("must be the name of an environment variable (letters, digits, '_')")
    return value


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

    @field_validator(
        "api_key_env", "aws_access_key_id_env", "aws_secret_access_key_env", "aws_session_token_env"
    )
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"{name!r} is not a valid header name")
            if "\r" in header_value or "\n" in header_value:
                raise ValueError(f"the value of {name!r} contains a line break")
            if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                raise ValueError(f"{name!r} is set by the gateway and cannot be configured")
        return value

    @model_validator(mode="after")
    def _base_url_for_type(self) -> ProviderConfig:
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
        return self
