"""Reading a YAML config file into `GatewayConfig`, with errors a person can act on.

Every problem is reported as `FILE: path.to.field: what is wrong`, and a misspelt field name
comes with the closest known one.
"""

from __future__ import annotations

import difflib
import logging
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tollway.config.environment import expand
from tollway.config.models import GatewayConfig, ProviderConfig

log = logging.getLogger("tollway.config")

# Provider types that usually run without a key (local servers, anything OpenAI-compatible).
KEYLESS_TYPES = frozenset({"openai_compatible", "vllm", "ollama", "lmstudio"})
_AUTH_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})


class ConfigError(Exception):
    """The configuration cannot be used; `str()` lists every problem, one a line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def load_config_file(path: str | Path, *, log_warnings: bool = True) -> GatewayConfig:
    """The file's configuration; what `config_warnings` finds is logged (unless the caller
    reports it itself)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if data is None:
        raise ConfigError(
            source,
            [
                "the file is empty: declare at least `providers` and `models` "
                "(see docs/configuration.md), or run `tollway serve --upstream URL` "
                "without a file"
            ],
        )
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping of sections"])
    problems: list[str] = []
    data = expand(data, os.environ, problems)
    if problems:
        raise ConfigError(source, problems)
    config = validate_config(data, source)
    if log_warnings:
        for warning in config_warnings(config):
            log.warning("%s: %s", source, warning)
    return config


def config_warnings(config: GatewayConfig) -> list[str]:
    """What is valid but will not work as the file's author most likely expects."""
    warnings = []
    if not config.models and not config.services:
        warnings.append("no models are declared: every model call will be answered 404")
    for i, client_key in enumerate(config.keys):
        if client_key.key_env is not None:
            warnings.append(
                f"keys[{i}].key_env is deprecated: name it api_key_env, as providers do"
            )
    for team, apps in config.apps.items():
        for app_name, app in apps.items():
            for i, app_key in enumerate(app.keys):
                if app_key.key_env is not None:
                    warnings.append(
                        f"apps.{team}.{app_name}.keys[{i}].key_env is deprecated: name it "
                        "api_key_env, as providers do"
                    )
    for name, provider in config.providers.items():
        if provider.type not in KEYLESS_TYPES and not _has_credential(provider):
            key = "aws_*_env (or api_key_env)" if provider.type == "bedrock" else "api_key_env"
            warnings.append(
                f"providers.{name}: a provider of type {provider.type!r} needs a key, and none "
                f"is configured: set {key} (or credentials); without it "
                f"{provider.resolved_base_url} will refuse every call"
            )
    return warnings


def _has_credential(provider: ProviderConfig) -> bool:
    secrets = provider.credentials
    if provider.api_key_env or (secrets is not None and secrets.api_key is not None):
        return True
    if provider.aws_access_key_id_env or (secrets is not None and secrets.aws_access_key_id):
        return True
    return any(header.lower() in _AUTH_HEADERS for header in provider.headers)


def validate_config(data: dict[str, Any], source: str = "config") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(error) for error in exc.errors()]) from None


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    where = _dotted(loc)
    if error["type"] == "extra_forbidden":
        field = str(loc[-1])
        known = _fields_at(loc[:-1])
        hint = ""
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif known:
            hint = f" (known fields: {', '.join(sorted(known))})"
        return f"{where}: unknown field{hint}"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if not where:
        return message
    return f"{where}: {message}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at `loc`, walking GatewayConfig's annotations."""
    current: Any = GatewayConfig
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _step(annotation: Any, part: Any) -> Any:
    annotation = _unwrap_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is list and args:
        return args[0]
    return None


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation
