"""Prometheus metrics on the admin port, judged by the official client's parser, and secrets
planted in calls that never reach a record, a log line, the metrics or the disk."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import select, text

from tollway.store import open_store
from tollway.store.metering_schema import call_records

from gateways import CLIENT_KEY, UPSTREAM_KEY, gateway_config
from servers import Process, free_port, start_gateway, start_mock, wait_started

TOKEN = "metrics-scrape-token-0123456789"
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def scrape(port: int, token: str | None = None) -> dict[str, list[Sample]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("tollway_"), family.name
        families[family.name] = family.samples
    return families


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def drive(gateway: Process) -> None:
    """12 answered calls, 3 refused by key_auth, 2 failed upstream."""
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    for n in range(12):
        client.chat.completions.create(model="echo", messages=MESSAGES, stream=n % 3 == 0)
    wrong = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0)
    for _ in range(3):
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="echo", messages=MESSAGES)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="broken", messages=MESSAGES)


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_parse_and_count_every_call(
    workers: int, workdir: Path, mock: Process, mock_b: Process
) -> None:
    """Without a store: one worker keeps its own metrics; with more, the recorder does."""
    gateway = start_gateway(
        workdir, gateway_config(mock, mock_b), env={"MOCK_KEY": UPSTREAM_KEY}, workers=workers
    )
    try:
        if workers > 1:
            wait_started(gateway)
        drive(gateway)
        assert gateway.admin_port is not None
        port = gateway.admin_port
        until(lambda: total(scrape(port)["tollway_requests"], "tollway_requests_total") == 17)
        families = scrape(port)
        requests = families["tollway_requests"]
        assert total(requests, "tollway_requests_total", model="echo", status="200") == 12
        assert total(requests, "tollway_requests_total", status="401") == 3
        assert total(requests, "tollway_requests_total", model="broken", status="500") == 2
        refusals = families["tollway_refusals"]
        assert total(refusals, "tollway_refusals_total", policy="key_auth") == 3
        failures = families["tollway_upstream_errors"]
        assert total(failures, "tollway_upstream_errors_total", provider="mock") == 2
        duration = families["tollway_request_duration_seconds"]
        buckets = [
            s for s in duration if s.name.endswith("_bucket") and s.labels["model"] == "echo"
        ]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and counts[-1] == 12
        ttft = families["tollway_time_to_first_token_seconds"]
        assert total(ttft, "tollway_time_to_first_token_seconds_count", model="echo") == 4
        tokens = families["tollway_tokens"]
        assert total(tokens, "tollway_tokens_total", model="echo", kind="output") >= 12
        assert "tollway_in_flight_requests" in families
        until(
            lambda: (
                total(scrape(port)["tollway_workers_reporting"], "tollway_workers_reporting")
                == workers
            )
        )
        # No per-key label anywhere.
        assert not any("key" in s.labels for samples in families.values() for s in samples)
    finally:
        gateway.stop()


def test_model_labels_are_bounded(workdir: Path, mock: Process) -> None:
    """A '*' route takes any model name: past 500 distinct names they count as _other."""
    gateway = start_gateway(workdir, None, "--upstream", mock.url + "/v1", workers=1)
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            for n in range(520):
                body = {"model": f"made-up-{n}", "messages": MESSAGES}
                client.post("/v1/chat/completions", json=body)
        assert gateway.admin_port is not None
        port = gateway.admin_port
        until(lambda: total(scrape(port)["tollway_requests"], "tollway_requests_total") == 520)
        requests = scrape(port)["tollway_requests"]
        models = {s.labels["model"] for s in requests}
        assert len(models) == 501 and "_other" in models
        assert total(requests, "tollway_requests_total", model="_other") == 20
    finally:
        gateway.stop()


# -- planted secrets ---------------------------------------------------------------------------

PROVIDER_KEY = "sk-proj-PLANTEDprovider0123456789abcdef"
BODY_TOKEN = "PLANTEDbodytoken0123456789abcdef"
WRONG_KEY = "tw-PLANTEDwrongclientkey0123456789abcdef"
ADMIN_TOKEN = "tollway-test-admin-token-0123456789"
SECRET_KEY = "tollway-test-secret-key-0123456789abcdef"


def test_planted_secrets_never_reach_records_logs_metrics_or_disk(workdir: Path) -> None:
    upstream = start_mock(workdir, api_key=PROVIDER_KEY)
    data = workdir / f"secrets-{free_port()}"
    admin_port = free_port()
    gateway = start_gateway(
        workdir,
        None,
        "--data-dir",
        str(data),
        "--admin-port",
        str(admin_port),
        env={
            "TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "TOLLWAY_SECRET_KEY": SECRET_KEY,
            "TOLLWAY_METRICS_TOKEN": TOKEN,
        },
        workers=2,
    )
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{admin_port}/admin/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )

    def ok(response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    try:
        wait_started(gateway)
        ok(
            admin.post(
                "/providers",
                json={
                    "name": "mock",
                    "type": "openai_compatible",
                    "base_url": upstream.url + "/v1",
                    "credentials": {"api_key": PROVIDER_KEY},
                },
            ),
            201,
        )
        ok(
            admin.post(
                "/models",
                json={
                    "name": "echo",
                    "deployments": [{"provider": "mock", "model": "gpt-4o~echo"}],
                },
            ),
            201,
        )
        team = ok(admin.post("/teams", json={"name": "ml"}), 201)["id"]
        service = ok(
            admin.post(
                "/services",
                json={
                    "team_id": team,
                    "name": "chat",
                    "kind": "ai",
                    "route_prefix": "/chat",
                    "visibility": "public",
                    "approval": "auto",
                },
            ),
            201,
        )["id"]
        version = ok(admin.post(f"/services/{service}/versions", json={"models": ["echo"]}), 201)
        ok(admin.post(f"/services/{service}/versions/{version['number']}/publish"))
        ok(admin.put(f"/services/{service}/recording", json={"bodies": True}))
        app = ok(admin.post("/apps", json={"team_id": team, "name": "bot"}), 201)["id"]
        client_key = ok(admin.post(f"/apps/{app}/keys", json={"name": "prod"}), 201)["key"]
        ok(admin.post("/subscriptions", json={"app_id": app, "service_id": service}), 201)
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=client_key, max_retries=0)
        planted = (
            f"my provider key is {PROVIDER_KEY}, mine is {client_key}, and the header was "
            f"Authorization: Bearer {BODY_TOKEN}"
        )

        def served() -> bool:
            try:
                reply = client.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": planted}]
                )
            except openai.APIStatusError:
                return False
            # The mock echoes: the answer carries the secrets back.
            assert PROVIDER_KEY in (reply.choices[0].message.content or "")
            return True

        until(served, 15)
        for stream in (False, True):
            for _ in (
                client.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": planted}], stream=True
                )
                if stream
                else [None]
            ):
                pass
        wrong = openai.OpenAI(base_url=gateway.url + "/v1", api_key=WRONG_KEY, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="echo", messages=MESSAGES)
        httpx.get(f"http://127.0.0.1:{admin_port}/metrics")  # refused: no token
        metrics = httpx.get(
            f"http://127.0.0.1:{admin_port}/metrics", headers={"authorization": f"Bearer {TOKEN}"}
        ).text
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(60) == 0
    finally:
        admin.close()
        gateway.stop()
        upstream.stop()
    secrets = (PROVIDER_KEY, client_key, BODY_TOKEN, WRONG_KEY)
    store = open_store(data_dir=data, secret_key=SECRET_KEY, apply_migrations=False)
    try:
        with store.read() as session:
            records = [dict(r) for r in session.execute(select(call_records)).mappings()]
            dumped = "\n".join(
                str(row) for row in session.execute(text("SELECT * FROM call_records"))
            )
    finally:
        store.close()
    recorded = [r for r in records if r["request_body"]]
    assert len(recorded) >= 2, "bodies were recorded"
    assert all("[REDACTED]" in r["request_body"] for r in recorded)
    assert any(r["response_body"] and "[REDACTED]" in r["response_body"] for r in recorded)
    assert any(r["status"] == 401 for r in records)
    places = {"records": dumped, "log": gateway.log(), "metrics": metrics}
    for path in data.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("latin-1")
    for secret in secrets:
        for place, content in places.items():
            assert secret not in content, f"{secret[:12]}... found in {place}"
