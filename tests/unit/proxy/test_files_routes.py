"""The Files API's routes: the upload's POST streams (a form), the rest do not; a router
built without a file store (tests, benchmarks) answers 501 in OpenAI's shape."""

from __future__ import annotations

import json
from typing import Any

from tollway.config.snapshot import RuntimeConfig, SnapshotHolder
from tollway.proxy.handlers.files import FilesApi
from tollway.proxy.http import Request
from tollway.proxy.routing import Router

from fakes import FakeClient, config


def files_router(runtime: RuntimeConfig) -> Router:
    """Every route's handler does nothing but the Files API's."""
    routes = runtime.routes
    tables = [*routes.exact.values(), *(methods for _, methods in routes.prefixes)]
    names = {entry.handler for methods in tables for entry in methods.values()}
    handlers: dict[str, Any] = {name: lambda ctx, conn: None for name in names}
    handlers["files"] = FilesApi(None).handle
    return Router(SnapshotHolder(runtime), handlers)


def test_uploads_stream_up_to_the_upload_limit() -> None:
    runtime = config()
    router = files_router(runtime)
    assert router.streamed_body_limit("/v1/files") == runtime.limits.max_upload_bytes
    assert router.streamed_body_limit("/v1/files/file-abc") is None


def test_without_a_store_the_files_api_is_501() -> None:
    router = files_router(config(policies=[]))
    client = FakeClient()
    for method, path in (
        ("GET", "/v1/files"),
        ("GET", "/v1/files/file-1"),
        ("DELETE", "/v1/files/x"),
    ):
        request = Request(method, path, b"", [], b"", "1.1", True, b"rid", "127.0.0.1")
        assert router.dispatch(request, client) is None  # type: ignore[arg-type]
    assert [status for status, _, _ in client.sent] == [501, 501, 501]
    error = json.loads(client.sent[0][2])["error"]
    assert error["type"] == "server_error" and "state folder" in error["message"]
