"""schemathesis against the admin API's OpenAPI document: generated requests (valid and
invalid) for every operation; no answer is a 5xx, every answer conforms to the document
(status, content type, headers, body schema), and invalid input is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tollway.admin.app import create_admin_app
from tollway.config.entities import ServiceSpec
from tollway.config.models import ModelConfig, ProviderConfig
from tollway.store import (
    SYSTEM,
    Store,
    apps,
    keys,
    llm_models,
    providers,
    services,
    subscriptions,
    teams,
    users,
    versions,
)

from control_plane import backend_params, reset, shared_store, start_server

EXAMPLES = int(os.environ.get("TOLLWAY_SCHEMATHESIS_EXAMPLES", "10"))


@pytest.fixture(scope="module", params=backend_params())
def admin_api(request: pytest.FixtureRequest) -> Iterator[tuple[Store, str]]:
    store = shared_store(str(request.param))
    server, base = start_server(store)
    yield store, base.removesuffix("/admin/v1")
    server.stop()


@pytest.fixture
def root_token(admin_api: tuple[Store, str]) -> str:
    """A store with one of everything (ids 1, 2, ...) and a platform admin's token."""
    store = reset(admin_api[0])
    with store.write(SYSTEM) as tx:
        root = users.create(tx, "root", platform_role="admin")
        _, token = users.create_token(tx, root, "schemathesis")
        member = users.create(tx, "member")
        owner = teams.create(tx, "owner")
        consumer = teams.create(tx, "consumer")
        teams.add_member(tx, owner, member, "team_admin")
        providers.create(
            tx, "p", ProviderConfig.model_validate({"base_url": "http://127.0.0.1:9/v1"})
        )
        llm_models.create(tx, "m", ModelConfig.model_validate({"deployments": [{"provider": "p"}]}))
        service = services.create(
            tx, owner, "chat", kind="ai", route_prefix="/chat", visibility="public"
        )
        versions.publish(tx, service, versions.create(tx, service, ServiceSpec(models=["m"])))
        app = apps.create(tx, consumer, "bot")
        keys.create(tx, app, "k")
        subscriptions.apply(tx, app, service, requested_by=root.id)
    return token


# The document is fixed by the code: build it once, here, to parametrize by operation.
DOCUMENT = create_admin_app(cast(Store, None)).openapi()
OPERATIONS = [
    result.ok() for result in schemathesis.openapi.from_dict(DOCUMENT).get_all_operations()
]


_FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect", "te", "upgrade"}


def _cases() -> list[Any]:
    """Every operation with valid input, and those that take any input with invalid input."""
    cases = []
    for operation in OPERATIONS:
        spec = DOCUMENT["paths"][operation.path][operation.method.lower()]
        modes = [GenerationMode.POSITIVE]
        if spec.get("parameters") or spec.get("requestBody") or spec.get("security"):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            cases.append(pytest.param(operation, mode, id=f"{operation.label}-{mode.value}"))
    return cases


@pytest.mark.parametrize(("operation", "mode"), _cases())
def test_admin_api_conforms_to_its_openapi_document(
    admin_api: tuple[Store, str], root_token: str, operation: Any, mode: GenerationMode
) -> None:
    _, base = admin_api

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        # A generated bearer token becomes the real one; a missing or malformed one stays so,
        # and the answer must be 401.
        headers = case.headers or {}
        # Negative cases may add any header: a made-up framing header (content-length: "x y")
        # tests the HTTP server's parser, which refuses it in plain text before the API sees
        # it, not the API. The client sets framing itself.
        for name in [n for n in headers if n.lower() in _FRAMING]:
            del headers[name]
        if str(headers.get("Authorization", "")).startswith("Bearer "):
            headers["Authorization"] = f"Bearer {root_token}"
        # Valid requests can still be refused for reasons no schema states (a duplicate name,
        # a state that does not allow the change, an unknown id in a body): not a failure.
        case.call_and_validate(base_url=base, excluded_checks=[positive_data_acceptance])

    call()


def test_the_document_is_served(admin_api: tuple[Store, str]) -> None:
    _, base = admin_api
    served = httpx.get(f"{base}/admin/v1/openapi.json").json()
    assert served == DOCUMENT
