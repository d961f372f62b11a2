"""Shared fixtures: one mock provider and one gateway for the whole session; tests that need
special settings start their own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gateways import UPSTREAM_KEY, gateway_config
from servers import Process, start_gateway, start_mock


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


@pytest.fixture(scope="session")
def gateway(workdir: Path, mock: Process, mock_b: Process) -> Iterator[Process]:
    process = start_gateway(workdir, gateway_config(mock, mock_b), env={"MOCK_KEY": UPSTREAM_KEY})
    yield process
    process.stop()
