"""REST services as they compile: the upstream spec's checks, the path sent upstream, header
rules, and a store state's service with its canary."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tollway.config.rest_service import HeaderRules, RestBackend
from tollway.config.rest_upstream import RestUpstreamConfig


def spec(**extra: Any) -> RestUpstreamConfig:
    return RestUpstreamConfig.model_validate(
        {"targets": [{"url": "http://a:1"}, {"url": "https://b/api/"}], **extra}
    )


def test_the_spec_refuses_what_cannot_work() -> None:
    assert spec().strategy == "weighted" and spec().tls.verify
    bad: list[dict[str, Any]] = [
        {"strategy": "random"},
        {"hash": {"on": "path"}},
        {"strategy": "consistent_hash", "hash": {"on": "header"}},
        {"strategy": "consistent_hash", "hash": {"on": "path", "header": "x"}},
        {"request_headers": {"remove": ["content-length"]}},
        {"response_headers": {"rename": {"x-a": "transfer-encoding"}}},
        {"request_headers": {"add": {"x-a": "b\r\nc"}}},
        {"tls": {"verify": False, "ca_file": "/ca.pem"}},
        {"replace_prefix": "v2"},
        {"retries": {"on_statuses": [404]}},
        {"health_checks": {"passive": {"eject_s": 60, "max_eject_s": 10}}},
        {"health_checks": {"active": {"path": "health"}}},
        {"unknown": 1},
    ]
    for extra in bad:
        with pytest.raises(ValidationError):
            spec(**extra)
    with pytest.raises(ValidationError, match="given twice"):
        RestUpstreamConfig.model_validate({"targets": [{"url": "http://a"}, {"url": "http://a/"}]})
    hashed = spec(strategy="consistent_hash", hash={"on": "header", "header": "X-User"})
    assert hashed.hash is not None and hashed.hash.header == "X-User"


def test_the_upstream_path() -> None:
    b = RestBackend(key="1/1", service_id=1, version=1, targets=())
    assert b.upstream_path("/billing", "/billing/invoices/7") == "/invoices/7"
    assert b.upstream_path("/billing", "/billing") == "/"
    kept = RestBackend(key="1/1", service_id=1, version=1, targets=(), strip_prefix=False)
    assert kept.upstream_path("/billing", "/billing/x") == "/billing/x"
    moved = RestBackend(key="1/1", service_id=1, version=1, targets=(), replace_prefix="/api/v2")
    assert moved.upstream_path("/billing", "/billing/x") == "/api/v2/x"
    assert moved.upstream_path("/billing", "/billing") == "/api/v2"
    root = RestBackend(key="1/1", service_id=1, version=1, targets=(), replace_prefix="")
    assert root.upstream_path("/billing", "/billing") == "/"


def test_header_rules_remove_then_rename_then_add() -> None:
    rules = HeaderRules(
        remove=frozenset((b"x-internal", b"x-old")),
        rename={b"x-old": b"x-never", b"x-user": b"x-client-user"},  # type: ignore[arg-type]
        add=((b"x-env", b"prod"), (b"x-client-user", b"replaced")),
    )
    headers = [
        (b"x-internal", b"1"),
        (b"x-old", b"2"),
        (b"x-user", b"ann"),
        (b"x-env", b"dev"),
        (b"accept", b"*/*"),
    ]
    assert rules.apply(headers) == [
        (b"accept", b"*/*"),
        (b"x-env", b"prod"),
        (b"x-client-user", b"replaced"),
    ]
    assert HeaderRules().apply(headers) is headers
