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


def test_a_rest_service_and_its_canary_compile() -> None:
    from types import MappingProxyType

    from tollway.config.tenancy import tenancy
    from tollway.store.state import ControlPlaneState, PublishedVersion, ServiceState, TeamState

    def version(number: int, upstream: RestUpstreamConfig) -> PublishedVersion:
        return PublishedVersion(number, None, None, upstream)

    blue = spec(
        strategy="consistent_hash",
        hash={"on": "header", "header": "X-Tenant"},
        replace_prefix="/v2",
        tls={"verify": False},
        health_checks={"active": {"path": "/healthz", "statuses": [200]}},
        retries={"attempts": 1, "on_statuses": [503]},
        request_headers={"rename": {"X-A": "X-B"}},
        max_request_bytes=1000,
    )
    green = RestUpstreamConfig.model_validate({"targets": [{"url": "http://green:1"}]})
    empty: MappingProxyType[Any, Any] = MappingProxyType({})
    state = ControlPlaneState(
        version=1,
        teams=MappingProxyType({1: TeamState(1, "ops")}),
        apps=empty,
        keys=empty,
        services=MappingProxyType(
            {
                5: ServiceState(
                    5,
                    1,
                    "api",
                    "rest",
                    "public",
                    "auto",
                    "/api",
                    published=version(1, blue),
                    canary=version(2, green),
                    canary_weight=15,
                )
            }
        ),
        subscriptions=empty,
        providers=empty,
        models=empty,
        catalog=empty,
    )
    runtime = tenancy(state, {}).services[5]
    assert runtime.rest is not None and runtime.rest.canary_weight == 15
    primary, canary = runtime.rest.backends()
    assert (primary.key, canary.key) == ("5/1", "5/2")
    assert primary.strategy == "consistent_hash" and primary.hash_header == b"x-tenant"
    assert primary.replace_prefix == "/v2" and primary.max_request_bytes == 1000
    assert [t.tls_verify for t in primary.targets] == [False, False]
    assert primary.targets[1].origin.base_path == "/api"
    assert len({t.seed for t in primary.targets}) == 2
    assert primary.active_check is not None and primary.active_check.passes(200)
    assert not primary.active_check.passes(204)
    assert primary.retries.on_statuses == frozenset((503,))
    assert primary.request_rules.rename == {b"x-a": b"x-b"}
    assert canary.strategy == "weighted" and canary.active_check is None
    assert runtime.rest.version(2) is canary and runtime.rest.version(3) is None
