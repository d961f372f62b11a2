"""Boot settings: command-line flags and the environment, read here and nowhere else.

The result is a `GatewayConfig` (from a YAML file, or built for `serve --upstream`) with the
command line's overrides applied, and the environment mapping that secrets are resolved from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.config.compile import hash_key
from tollway.config.load import ConfigError, load_config_file, validate_config
from tollway.config.models import GatewayConfig


@dataclass(frozen=True)
class ServeSettings:
    config_path: str | None = None
    upstream: str | None = None
    upstream_key_env: str | None = None
    client_key: str | None = None
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    drain_timeout_s: float | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)


def gateway_config(settings: ServeSettings) -> GatewayConfig:
    """The configuration to serve, with command-line overrides applied."""
    if settings.config_path and settings.upstream:
        raise ConfigError("command line", ["give either --config or --upstream, not both"])
    if settings.config_path:
        config = load_config_file(settings.config_path)
        if settings.client_key is not None:
            raise ConfigError(
                "command line",
                ["--key goes with --upstream; with --config, declare client keys in the file"],
            )
    elif settings.upstream:
        config = validate_config(_upstream_config(settings), "command line")
    else:
        raise ConfigError(
            "command line", ["give --config FILE, or --upstream URL for a zero-config proxy"]
        )
    overrides: dict[str, Any] = {}
    for name, value in (
        ("host", settings.host),
        ("port", settings.port),
        ("workers", settings.workers),
        ("drain_timeout_s", settings.drain_timeout_s),
    ):
        if value is not None:
            overrides[name] = value
    if overrides:
        server = config.server.model_dump() | overrides
        config = validate_config(config.model_dump() | {"server": server}, "command line")
    return config


def _upstream_config(settings: ServeSettings) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "openai_compatible", "base_url": settings.upstream}
    if settings.upstream_key_env:
        provider["api_key_env"] = settings.upstream_key_env
    data: dict[str, Any] = {
        "providers": {"upstream": provider},
        "models": {"*": {"deployments": [{"provider": "upstream"}]}},
    }
    if settings.client_key is not None:
        if not settings.client_key:
            raise ConfigError("command line", ["--key must not be empty"])
        data["keys"] = [{"name": "cli", "key_sha256": hash_key(settings.client_key)}]
    return data
