"""What the integration tests share besides fixtures: the test keys, the session gateway's
configuration, and a helper that starts a gateway over given providers.

Kept apart from conftest.py so that tests import it by a name no other directory's conftest
shares (pytest loads every conftest.py as a module named `conftest`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from servers import Process, free_port, start_gateway, wait_started

CLIENT_KEY = "sk-test-client"
UPSTREAM_KEY = "sk-upstream-secret"
# A key allowed only some models (see gateway_config).
LIMITED_KEY = "sk-test-limited"


# Public model names whose upstream model carries mock-provider directives.
FAULT_MODELS = {
    "echo": "echo",
    "rate-limited": "status=429",
    "broken": "status=500",
    "overloaded": "status=503",
    "slow": "latency_ms=4000",
    "unhurried": "latency_ms=1500",
    "reset": "reset",
    "cut-body": "cut_after=1",
    "cut-stream": "cut_after=3",
    "stall-stream": "chunks=3,chunk_delay_ms=4000",
    "slow-stream": "chunks=40,chunk_delay_ms=150",
    "big-stream": "chunks=400,words=400,pad=65536",
}


def gateway_config(mock: Process, mock_b: Process, **server: object) -> dict[str, object]:
    from tollway.config.compile import hash_key

    provider = {
        "type": "openai_compatible",
        "api_key_env": "MOCK_KEY",
        "timeouts": {"first_byte_s": 2, "idle_s": 2},
    }
    return {
        "server": {"drain_timeout_s": 10, **server},
        "providers": {
            "mock": {**provider, "base_url": mock.url + "/v1"},
            "mock_b": {**provider, "base_url": mock_b.url + "/v1"},
            "down": {"base_url": "http://127.0.0.1:9/v1"},
            "wrong_key": {"base_url": mock.url + "/v1"},
            "tiny": {
                **provider,
                "base_url": mock.url + "/v1",
                "timeouts": {"max_response_bytes": 2048},
            },
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "mock"}]},
            "alias": {"deployments": [{"provider": "mock", "model": "gpt-4o"}]},
            "balanced": {
                "deployments": [
                    {"provider": "mock", "model": "gpt-4o"},
                    {"provider": "mock_b", "model": "gpt-4o"},
                ]
            },
            "unreachable": {"deployments": [{"provider": "down"}]},
            "too-big": {"deployments": [{"provider": "tiny", "model": "gpt-4o~words=500"}]},
            "misconfigured": {"deployments": [{"provider": "wrong_key"}]},
            "text-embedding-3-small": {"deployments": [{"provider": "mock"}]},
            "gpt-3.5-turbo-instruct": {"deployments": [{"provider": "mock"}]},
            **{
                name: {"deployments": [{"provider": "mock", "model": "gpt-4o~" + faults}]}
                for name, faults in FAULT_MODELS.items()
            },
        },
        "keys": [
            {"name": "tests", "key_sha256": hash_key(CLIENT_KEY)},
            {
                "name": "limited",
                "key_sha256": hash_key(LIMITED_KEY),
                "models": ["gpt-4o-mini", "text-embedding-*"],
            },
        ],
    }


def keyed_gateway(
    workdir: Path,
    providers: dict[str, object],
    models: dict[str, object],
    env: dict[str, str] | None = None,
) -> Process:
    """A gateway over the given providers, with the test client key, the upstream key in
    MOCK_KEY, and one deployment a model: {public name: (provider, upstream model)}; `env`
    adds to its environment."""
    from tollway.config.compile import hash_key

    config = {
        "providers": providers,
        "models": {
            name: {"deployments": [{"provider": provider, "model": model}]}
            for name, (provider, model) in models.items()
        },
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }
    return start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY, **(env or {})})


def recording_gateway(
    workdir: Path, config: dict[str, object], name: str
) -> Iterator[tuple[Process, Path]]:
    """For a module fixture (`yield from`): a started gateway on `config` with a data folder of
    its own (so its call records can be read: call_records.stored_records), the upstream key
    in MOCK_KEY; stopped afterwards."""
    data = workdir / f"{name}-{free_port()}"
    gateway = start_gateway(
        workdir, config, "--data-dir", str(data), env={"MOCK_KEY": UPSTREAM_KEY}
    )
    yield wait_started(gateway), data
    gateway.stop()
