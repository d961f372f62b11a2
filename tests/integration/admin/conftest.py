from __future__ import annotations

from collections.abc import Iterator

import pytest

from tollway.admin.server import AdminServer
from tollway.store import Store

from control_plane import Admin, backend_params, fresh_admin, shared_store, start_server


@pytest.fixture(scope="session", params=backend_params())
def admin_server(request: pytest.FixtureRequest) -> Iterator[tuple[Store, AdminServer, str]]:
    store = shared_store(str(request.param))
    server, base = start_server(store)
    yield store, server, base
    server.stop()


@pytest.fixture
def admin(admin_server: tuple[Store, AdminServer, str]) -> Iterator[Admin]:
    harness = fresh_admin(*admin_server)
    yield harness
    harness.close()
