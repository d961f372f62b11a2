"""Boot settings: command-line flags and the environment, read here and nowhere else.

The result is a `GatewayConfig` (from a YAML file, or built for `serve --upstream`) with the
command line's overrides applied, and the environment mapping that secrets are resolved from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    # The control plane's store: a data directory or a database URL (see `settings_store`).
    data_dir: str | None = None
    store: str | None = None
    admin_host: str | None = None
    admin_port: int | None = None
    access_log: bool | None = None
    # Rate-limit and budget counters shared by many nodes (else the node's shared memory).
    redis_url: str | None = None
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
    elif settings_store(settings) is not None:
        # The store holds everything; only the server settings come from here.
        config = GatewayConfig()
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
        ("access_log", settings.access_log),
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


def counters_redis_url(settings: ServeSettings) -> str | None:
    """`--redis URL`, else $TOLLWAY_REDIS_URL: where rate limits and budgets are counted
    across nodes; None for the node's own shared memory."""
    return settings.redis_url or settings.environ.get("TOLLWAY_REDIS_URL") or None


def counters_redis_wait_s(settings: ServeSettings) -> float:
    """$TOLLWAY_REDIS_WAIT_MS: how long a call waits on Redis before the node's fallback
    decides it (default 50 ms; ValueError when it is not a positive number)."""
    return _seconds_from_ms(settings, "TOLLWAY_REDIS_WAIT_MS", 0.05, 60_000)


def batch_poll_s(settings: ServeSettings) -> float:
    """$TOLLWAY_BATCH_POLL_MS: how often a batch passed through to a provider's Batch API is
    polled there (default 5 s; ValueError when it is not a positive number)."""
    return _seconds_from_ms(settings, "TOLLWAY_BATCH_POLL_MS", 5.0, 3_600_000)


def _seconds_from_ms(settings: ServeSettings, name: str, default_s: float, most_ms: int) -> float:
    """A variable in milliseconds, in seconds; ValueError when it is not more than 0 and at
    most `most_ms`."""
    given = settings.environ.get(name)
    if not given:
        return default_s
    wait = float(given)
    if not 0 < wait <= most_ms:
        raise ValueError(f"{name}={given}: milliseconds, more than 0")
    return wait / 1000


def files_dir(settings: ServeSettings) -> Path | None:
    """$TOLLWAY_FILES_DIR: the folder of the Files API's uploads and the batches (default: the
    node's own, beside its state). The nodes of a cluster that name one folder they all mount
    share files and batches; ValueError when it names something that is not a folder."""
    given = settings.environ.get("TOLLWAY_FILES_DIR")
    if not given:
        return None
    folder = Path(given)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"TOLLWAY_FILES_DIR={given}: not a folder")
    return folder


# --- call records and metrics ------------------------------------------------------------


@dataclass(frozen=True)
class RecordingSettings:
    """Where call records wait when they cannot go on (spool), how long they are kept, and
    the token GET /metrics wants (none: open, on the loopback admin port by default)."""

    spool_dir: Path | None
    retention_days: int
    metrics_token: str | None = field(default=None, repr=False)


def recording_settings(settings: ServeSettings, store: StoreSettings | None) -> RecordingSettings:
    """$TOLLWAY_SPOOL_DIR (default: the data directory's `spool`, or for a database URL a
    directory of its own under the default data directory), $TOLLWAY_RECORD_RETENTION_DAYS
    (default 30) and $TOLLWAY_METRICS_TOKEN."""
    env = settings.environ
    spool: Path | None = None
    if store is not None:
        if env.get("TOLLWAY_SPOOL_DIR"):
            spool = Path(env["TOLLWAY_SPOOL_DIR"])
        elif store.data_dir is not None:
            spool = store.data_dir / "spool"
        else:
            assert store.store_url is not None
            # One directory per store: records spooled for one never replay into another.
            digest = hashlib.sha256(store.store_url.encode()).hexdigest()[:16]
            spool = default_data_dir(env) / "spool" / digest
    raw = env.get("TOLLWAY_RECORD_RETENTION_DAYS", "30")
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        problem = f"TOLLWAY_RECORD_RETENTION_DAYS must be a whole number of days: {raw!r}"
        raise ConfigError("environment", [problem])
    return RecordingSettings(spool, days, env.get("TOLLWAY_METRICS_TOKEN") or None)


# --- the control plane's store and the admin API's address ---------------------------------


def settings_store(settings: ServeSettings) -> StoreSettings | None:
    """Where `serve` keeps its control plane, or None for a file-only or zero-config gateway.

    A store when asked for (`--data-dir`, `--store`, or $TOLLWAY_STORE_URL / $TOLLWAY_DATA_DIR
    with a file), and by default when neither a file nor an upstream is given."""
    env = settings.environ
    if settings.upstream:
        if settings.data_dir or settings.store:
            raise ConfigError("command line", ["--upstream serves without a store"])
        return None
    asked = bool(
        settings.data_dir
        or settings.store
        or env.get("TOLLWAY_STORE_URL")
        or env.get("TOLLWAY_DATA_DIR")
    )
    if settings.config_path and not asked:
        return None
    return store_settings(settings.data_dir, settings.store, env)


DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """$TOLLWAY_DATA_DIR, else $XDG_DATA_HOME/tollway (~/.local/share/tollway)."""
    if environ.get("TOLLWAY_DATA_DIR"):
        return Path(environ["TOLLWAY_DATA_DIR"])
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME") or "~") / ".local/share")
    return Path(base).expanduser() / "tollway"


@dataclass(frozen=True)
class StoreSettings:
    """Where the control plane's store lives, and the secrets that go with it."""

    # A SQLite store in this directory (created on first use)...
    data_dir: Path | None
    # ...or a database URL (postgresql://..., sqlite:///FILE).
    store_url: str | None
    # TOLLWAY_SECRET_KEY: seals provider credentials (a data directory keeps its own when unset).
    secret_key: str | None = field(default=None, repr=False)
    # TOLLWAY_ADMIN_TOKEN: the bootstrap admin token (see tollway.store.bootstrap).
    admin_token: str | None = field(default=None, repr=False)

    @property
    def location(self) -> str:
        """Where the store is, fit to print: a URL's password is masked."""
        if self.store_url is None:
            return str(self.data_dir)
        parts = urlsplit(self.store_url)
        if parts.password is None:
            return self.store_url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))


def store_settings(
    data_dir: str | None = None,
    store: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreSettings:
    """`--data-dir` or `--store` (else $TOLLWAY_STORE_URL, else the default data directory)."""
    env = os.environ if environ is None else environ
    if data_dir and store:
        raise ConfigError("command line", ["give either --data-dir or --store, not both"])
    store = store or (None if data_dir else env.get("TOLLWAY_STORE_URL") or None)
    return StoreSettings(
        data_dir=None if store else (Path(data_dir) if data_dir else default_data_dir(env)),
        store_url=store,
        secret_key=env.get("TOLLWAY_SECRET_KEY") or None,
        admin_token=env.get("TOLLWAY_ADMIN_TOKEN") or None,
    )


@dataclass(frozen=True)
class AdminClientSettings:
    """How `tollway admin ...` reaches the admin API."""

    url: str
    token: str | None = field(default=None, repr=False)


def admin_client_settings(
    url: str | None = None, environ: Mapping[str, str] | None = None
) -> AdminClientSettings:
    """`--url`, else $TOLLWAY_ADMIN_URL, else http://127.0.0.1:8081; the token from
    $TOLLWAY_TOKEN, else $TOLLWAY_ADMIN_TOKEN."""
    env = os.environ if environ is None else environ
    return AdminClientSettings(
        url=(url or env.get("TOLLWAY_ADMIN_URL") or DEFAULT_ADMIN_URL).rstrip("/"),
        token=env.get("TOLLWAY_TOKEN") or env.get("TOLLWAY_ADMIN_TOKEN") or None,
    )
