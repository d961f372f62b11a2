"""A mock provider process for the tests that drive it over HTTP with the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from media_mock_key import MEDIA_KEY
from servers import Process, start_mock


@pytest.fixture(scope="session")
def media_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_mock(tmp_path_factory.mktemp("media-mock"), api_key=MEDIA_KEY)
    yield process
    process.stop()
