from __future__ import annotations

import pytest

from tollway.store import Store

from control_plane import backend_params, reset, shared_store


@pytest.fixture(scope="session", params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str) -> Store:
    return reset(shared_store(backend))
