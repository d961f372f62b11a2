"""The building blocks of the configuration models: the strict base model, field checks
shared by several sections, and the ways a key or an upstream's timeouts are given."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError("must be the name of an environment variable (letters, digits, '_')")
    return value


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    return value.rstrip("/")


def static_headers(value: dict[str, str]) -> dict[str, str]:
    for name, header_value in value.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"{name!r} is not a valid header name")
        if "\r" in header_value or "\n" in header_value:
            raise ValueError(f"the value of {name!r} contains a line break")
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise ValueError(f"{name!r} is set by the gateway and cannot be configured")
    return value


class UpstreamTimeoutsConfig(Strict):
    connect_s: float = Field(10.0, gt=0)
    first_byte_s: float = Field(300.0, gt=0)
    idle_s: float = Field(120.0, gt=0)
    pool_idle_s: float = Field(60.0, gt=0)
    max_response_bytes: int = Field(64 * 1024 * 1024, gt=0)


class ProviderTimeoutsConfig(UpstreamTimeoutsConfig):
    total_s: float | None = Field(
        None, gt=0, description="the whole of a non-streamed call, request sent to last byte"
    )


class KeyMaterial(Strict):
    """How a key is given: its SHA-256 (hex), or the environment variable holding it
    (`api_key_env`, as for providers; `key_env` is the older name, still accepted)."""

    key_sha256: str | None = None
    api_key_env: str | None = None
    key_env: str | None = Field(None, description="deprecated: the older name of api_key_env")

    @field_validator("api_key_env", "key_env")
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return env_name(value)

    @field_validator("key_sha256")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.fullmatch(value):
            raise ValueError("must be 64 lower-case hex digits (tollway hash-key prints it)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyMaterial:
        given = [v for v in (self.key_sha256, self.api_key_env, self.key_env) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of key_sha256 and api_key_env")
        return self

    @property
    def env_var(self) -> str | None:
        """The environment variable holding the key, whichever name gave it."""
        return self.api_key_env or self.key_env


# A model's public name, as services, keys and prompt APIs name it.
ModelRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]
