"""Shared fixtures: one mock provider and one gateway for the whole session; tests that need
special settings start their own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import Process, start_gateway, start_mock

CLIENT_KEY = "sk-test-client"
UPSTREAM_KEY = "sk-upstream-secret"
# A key allowed only some models (see gateway_config).
LIMITED_KEY = "sk-test-limited"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def mock(workdir: Path) -> Iterator[Process]:
    process = start_mock(workdir, api_key=UPSTREAM_KEY)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def mock_b(workdir: Path) -> Iterator[Process]:
    process = start_mock(workdir, api_key=UPSTREAM_KEY)
    yield process
    process.stop()


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


@pytest.fixture(scope="session")
def gateway(workdir: Path, mock: Process, mock_b: Process) -> Iterator[Process]:
    process = start_gateway(workdir, gateway_config(mock, mock_b), env={"MOCK_KEY": UPSTREAM_KEY})
    yield process
    process.stop()


def keyed_gateway(
    workdir: Path, providers: dict[str, object], models: dict[str, object]
) -> Process:
    """A gateway over the given providers, with the test client key, the upstream key in
    MOCK_KEY, and one deployment a model: {public name: (provider, upstream model)}."""
    from tollway.config.compile import hash_key

    config = {
        "providers": providers,
        "models": {
            name: {"deployments": [{"provider": provider, "model": model}]}
            for name, (provider, model) in models.items()
        },
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }
    return start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY})
