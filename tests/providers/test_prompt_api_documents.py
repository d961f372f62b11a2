"""The OpenAPI documents of prompt APIs, as served: by the data plane (each API's, for the apps
that call it) and by the admin API (a catalog entry's, and everything an app is subscribed to);
each valid (openapi-spec-validator); and schemathesis, driven by an API's own document, calls
that API with generated input, valid and invalid: valid input is answered with the output
schema's value, invalid input is refused (400 or 401), and no answer strays from the document."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from gateways import CLIENT_KEY
from prompt_api_servers import ADMIN_TOKEN, start_prompt_gateway
from servers import Process

EXAMPLES = int(os.environ.get("TOLLWAY_SCHEMATHESIS_EXAMPLES", "25"))
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
PREFIXES = {"/apis/sentiment", "/apis/sentiment-claude", "/apis/sloppy", "/apis/summarize"}


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


@pytest.fixture
def admin(gateway: Process) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{gateway.admin_port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    ) as client:
        yield client


def test_the_data_plane_serves_each_api_s_document(gateway: Process) -> None:
    answer = httpx.get(gateway.url + "/apis/sentiment/openapi.json", headers=AUTH)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    validate(doc)
    assert list(doc["paths"]) == ["/apis/sentiment"]
    assert doc["servers"] == [{"url": gateway.url}]
    output = doc["components"]["schemas"]["MlSentimentOutput"]
    assert output["required"] == ["label", "score"]
    # For the apps that call it: a key is needed.
    assert httpx.get(gateway.url + "/apis/sentiment/openapi.json").status_code == 401


def test_the_admin_api_serves_a_catalog_entry_s_and_an_app_s_documents(
    admin: httpx.Client,
) -> None:
    catalog = admin.get("/catalog", params={"kind": "prompt"}).json()["items"]
    by_prefix = {entry["route_prefix"]: entry["service_id"] for entry in catalog}
    assert set(by_prefix) >= PREFIXES
    sloppy = next(e for e in catalog if e["route_prefix"] == "/apis/sloppy")
    assert sloppy["input_schema"]["required"] == ["text"]
    assert sloppy["output_schema"]["required"] == ["label", "score"]
    assert sloppy["openapi"] == f"/admin/v1/catalog/{sloppy['service_id']}/openapi.json"
    assert sloppy["mcp"] == "/apis/sloppy/mcp"
    one = admin.get(sloppy["openapi"].removeprefix("/admin/v1"))
    assert one.status_code == 200, one.text
    validate(one.json())
    assert list(one.json()["paths"]) == ["/apis/sloppy"]
    app = next(a for a in admin.get("/apps").json()["items"] if a["name"] == "bot")
    combined = admin.get(f"/apps/{app['id']}/openapi.json")
    assert combined.status_code == 200, combined.text
    validate(combined.json())
    assert set(combined.json()["paths"]) == set(by_prefix)
    assert admin.get("/catalog/999999/openapi.json").status_code == 404


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_calls_the_api_from_its_own_document(
    gateway: Process, mode: GenerationMode
) -> None:
    doc = httpx.get(gateway.url + "/apis/sentiment/openapi.json", headers=AUTH).json()
    (operation,) = [r.ok() for r in schemathesis.openapi.from_dict(doc).get_all_operations()]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        headers = case.headers or {}
        # A generated bearer token becomes the app's key; a missing or malformed one stays so.
        if (
            str(headers.get("Authorization", "")).startswith("Bearer ")
            or mode == GenerationMode.POSITIVE
        ):
            headers["Authorization"] = AUTH["Authorization"]
        for name in [n for n in headers if n.lower() in ("content-length", "host", "connection")]:
            del headers[name]
        response = case.call_and_validate(base_url=gateway.url, headers=headers)
        statuses.append(response.status_code)

    call()
    if mode == GenerationMode.POSITIVE:
        assert set(statuses) == {200}, statuses
    else:
        assert statuses and set(statuses) <= {400, 401}, statuses
