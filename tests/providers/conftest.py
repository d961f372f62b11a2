"""Fixtures the provider suites share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from limits_helpers import RedisServer


@pytest.fixture(scope="module")
def redis(workdir: Path) -> Iterator[RedisServer]:
    """A redis-server of the module's own (stored responses and conversations in Redis)."""
    server = RedisServer(workdir)
    yield server
    server.stop()
