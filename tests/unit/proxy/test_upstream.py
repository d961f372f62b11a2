from __future__ import annotations

import pytest

from tollway.config.transport import Origin
from tollway.proxy.upstream import UpstreamError, request_head


def test_origin_from_url() -> None:
    origin = Origin.from_url("https://api.example.com/v1/")
    assert (origin.scheme, origin.host, origin.port, origin.base_path) == (
        "https",
        "api.example.com",
        443,
        "/v1",
    )
    assert origin.host_header == b"api.example.com"
    local = Origin.from_url("http://127.0.0.1:9000/v1")
    assert local.host_header == b"127.0.0.1:9000"
    assert Origin.from_url("http://[::1]:8000").host_header == b"[::1]:8000"
    with pytest.raises(ValueError):
        Origin.from_url("ftp://x")


def test_request_head_is_valid_http() -> None:
    head = request_head(
        b"POST", b"/v1/chat/completions", b"h:1", ((b"a", b"1"),), ((b"b", b"2"),), 10
    )
    assert head == (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: h:1\r\na: 1\r\nb: 2\r\n"
        b"content-length: 10\r\n\r\n"
    )


def test_error_kinds_map_to_status() -> None:
    assert UpstreamError("timeout", "x").status == 504
    assert UpstreamError("connect", "x").status == 502
    assert UpstreamError("closed", "x").status == 502
