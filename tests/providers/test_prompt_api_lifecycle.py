"""A prompt API's life through the admin API, on a running gateway: defined (a definition that
cannot work is refused, naming its field), tried in the playground as a draft (rendered
messages, answer, tokens, cost), its test cases run; a failing case blocks the publication
(409 naming it) until a team admin overrides it, which the audit log records; published, an
app subscribes and calls it; a second version passes its tests and starts an A/B test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways import CLIENT_KEY
from prompt_api_servers import ADMIN_TOKEN, SENTIMENT_INPUT, SENTIMENT_OUTPUT, start_prompt_gateway
from servers import Process, requests_seen

PASSING = {
    "name": "positive text",
    "input": {"text": "I love it", "language": "en"},
    "checks": [
        {"type": "field_equals", "field": "label", "value": "positive"},
        {"type": "json_schema", "json_schema": {"required": ["score"]}},
        {"type": "regex", "pattern": '"score"\\s*:\\s*[0-9.]+'},
    ],
}
FAILING = {
    "name": "negative text",
    "input": {"text": "I hate it"},
    "checks": [
        {"type": "exact", "value": {"label": "negative", "score": 0.1}},
        {"type": "contains", "text": "negative"},
    ],
}


def definition(*tests: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Classify the text's sentiment."},
            {"role": "user", "content": "{{ text }}"},
        ],
        "input_schema": SENTIMENT_INPUT,
        "output_schema": SENTIMENT_OUTPUT,
        "model": "gpt",
        "tests": list(tests),
    }


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(gateway: Process) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{gateway.admin_port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    ) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def service_id(admin: httpx.Client) -> int:
    team = next(t for t in ok(admin.get("/teams"))["items"] if t["name"] == "ml")
    created = ok(
        admin.post(
            "/services",
            json={
                "team_id": team["id"],
                "name": "classify",
                "kind": "prompt",
                "route_prefix": "/apis/classify",
                "approval": "auto",
            },
        ),
        201,
    )
    return int(created["id"])


def test_a_definition_that_cannot_work_is_refused_naming_its_field(
    admin: httpx.Client, service_id: int
) -> None:
    base = f"/services/{service_id}/versions"
    broken = definition()
    broken["messages"] = [{"role": "user", "content": "{{ txt }}"}]
    refused = admin.post(base, json={"prompt": broken})
    assert refused.status_code == 422
    assert any(
        "not a property of input_schema" in f["message"] for f in refused.json()["error"]["fields"]
    )
    wrong_input = definition({**PASSING, "input": {"text": 5}})
    refused = admin.post(base, json={"prompt": wrong_input})
    assert refused.status_code == 422 and "tests[0].input" in refused.text
    unknown_model = {**definition(), "model": "nowhere"}
    refused = admin.post(base, json={"prompt": unknown_model})
    assert refused.status_code == 422 and "prompt.model" in refused.text
    assert admin.post(base, json={"models": ["gpt"]}).status_code == 422


def test_a_draft_in_the_playground(admin: httpx.Client, service_id: int, mock: Process) -> None:
    base = f"/services/{service_id}/versions"
    draft = ok(admin.post(base, json={"prompt": definition(PASSING, FAILING)}), 201)
    assert draft["status"] == "draft" and draft["prompt"]["tests"][0]["name"] == "positive text"
    before = requests_seen(mock)
    tried = ok(
        admin.post(
            f"{base}/{draft['number']}/playground",
            json={"inputs": [{"text": "What a day"}, {"text": 3}]},
        )
    )
    good, bad = tried["runs"]
    assert good["messages"][-1] == {"role": "user", "content": "What a day"}
    assert good["output"]["label"] == "positive" and good["error"] is None
    assert good["input_tokens"] > 0 and good["output_tokens"] > 0
    assert good["cost"] is not None and float(good["cost"]) > 0
    assert good["deployment"] == "mock/gpt-4o-mini"
    assert bad["error"].startswith("input: $.text") and bad["messages"] == []
    assert requests_seen(mock) == before + 1  # the bad input never reached the model


def test_failing_test_cases_block_the_publication_until_overridden(
    admin: httpx.Client, service_id: int, gateway: Process
) -> None:
    base = f"/services/{service_id}/versions"
    number = ok(admin.get(base))["items"][0]["number"]
    results = ok(admin.post(f"{base}/{number}/test"))
    assert results["passed"] is False
    by_name = {r["name"]: r for r in results["results"]}
    assert by_name["positive text"]["passed"] is True
    failures = by_name["negative text"]["failures"]
    assert failures[0].startswith("exact: expected {'label': 'negative'")
    assert failures[1] == "contains: the answer does not contain 'negative'"
    blocked = admin.post(f"{base}/{number}/publish")
    assert blocked.status_code == 409
    assert "1 of 2 test cases failed" in blocked.json()["error"]["message"]
    assert ok(admin.get(base))["items"][0]["status"] == "draft"
    published = ok(admin.post(f"{base}/{number}/publish", json={"override_failed_tests": True}))
    assert published["status"] == "published"
    audit = ok(admin.get("/audit"))["items"]
    entry = next(e for e in audit if e["action"] == "override_failed_tests")
    assert entry["changes"]["failed"]["negative text"] == failures
    # Published, it serves only the apps subscribed to it.
    key = {"Authorization": f"Bearer {CLIENT_KEY}"}
    deadline = time.monotonic() + 10
    refused = httpx.post(gateway.url + "/apis/classify", json={"text": "x"}, headers=key)
    while refused.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.1)  # the workers have not got the new configuration yet
        refused = httpx.post(gateway.url + "/apis/classify", json={"text": "x"}, headers=key)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "subscription_required"
    # An app subscribes and calls it, once the workers have the new configuration.
    app = next(a for a in ok(admin.get("/apps"))["items"] if a["name"] == "bot")
    ok(admin.post("/subscriptions", json={"app_id": app["id"], "service_id": service_id}), 201)
    answer = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = httpx.post(
            gateway.url + "/apis/classify",
            json={"text": "lovely"},
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        )
        if answer.status_code == 200:
            break
        time.sleep(0.1)
    assert answer is not None and answer.status_code == 200, answer.text if answer else None
    assert answer.json()["label"] == "positive"


def test_a_passing_version_starts_an_a_b_test(
    admin: httpx.Client, service_id: int, mock: Process
) -> None:
    base = f"/services/{service_id}/versions"
    second = ok(admin.post(base, json={"prompt": definition(PASSING)}), 201)
    before = requests_seen(mock)
    canary = ok(admin.post(f"{base}/{second['number']}/canary", json={"weight": 50}))
    assert canary["status"] == "canary" and canary["weight"] == 50
    assert requests_seen(mock) == before + 1  # its one test case ran
    # A weight change does not run the tests again; a failing third version is blocked.
    assert ok(admin.post(f"{base}/{second['number']}/canary", json={"weight": 20}))["weight"] == 20
    assert requests_seen(mock) == before + 1
    third = ok(admin.post(base, json={"prompt": definition(FAILING)}), 201)
    assert admin.post(f"{base}/{third['number']}/publish").status_code == 409
