"""The control plane enforced by the data plane, end to end: `tollway serve` on a store with two
workers, configured only through its admin API, called with the official SDKs.

Team `ml` publishes a chat service with manual approval; team `payments`' app subscribes; its
calls are refused (403, saying why) until the approval, served after it, refused again when
the subscription or the key is revoked. Each change must reach every worker without a restart;
the tests wait for it (up to a generous bound) and record how long it took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from control_plane import PostgresCluster, backend_params, new_database, postgres_server
from gateways import UPSTREAM_KEY
from servers import Process, free_port, start_gateway

ADMIN_TOKEN = "tollway-test-admin-token-0123456789"
SECRET_KEY = "tollway-test-secret-key-0123456789abcdef"
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# How long a change may take to reach every worker before the test gives up (the target is
# under a second; the bound only keeps a slow machine from failing the test).
PATIENCE_S = 10.0


class Gateway:
    def __init__(self, process: Process, admin_port: int) -> None:
        self.process = process
        self.admin = httpx.Client(
            base_url=f"http://127.0.0.1:{admin_port}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        self.delays: dict[str, float] = {}

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def openai(self, key: str, prefix: str = "") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.process.url + prefix + "/v1", api_key=key, max_retries=0)

    def until(self, label: str, check: Callable[[], bool]) -> None:
        """Waits for `check` to hold on fresh connections (so on both workers), and records
        how long the change took to take effect."""
        started = time.monotonic()
        while time.monotonic() - started < PATIENCE_S:
            if all(check() for _ in range(6)):
                self.delays[label] = time.monotonic() - started
                return
            time.sleep(0.02)
        raise AssertionError(f"{label}: not in effect after {PATIENCE_S} s")


def status_of(call: Callable[[], Any]) -> tuple[int, str | None]:
    try:
        call()
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return exc.status_code, body.get("code")
    return 200, None


def start_on_store(workdir: Path, store: list[str], workers: int = 2) -> Gateway:
    admin_port = free_port()
    process = start_gateway(
        workdir,
        None,
        *store,
        "--admin-port",
        str(admin_port),
        env={"TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN, "TOLLWAY_SECRET_KEY": SECRET_KEY},
        workers=workers,
    )
    return Gateway(process, admin_port)


@pytest.fixture(scope="module", params=backend_params())
def gateway(request: pytest.FixtureRequest, workdir: Path, mock: Process) -> Iterator[Gateway]:
    if request.param == "sqlite":
        store = ["--data-dir", str(workdir / f"store-{free_port()}")]
    else:
        store = ["--store", new_database(postgres_server())]
    gw = start_on_store(workdir, store)
    _declare_models(gw, mock)
    yield gw
    gw.admin.close()
    gw.process.stop()


def _declare_models(gw: Gateway, mock: Process) -> None:
    gw.ok(
        gw.admin.post(
            "/providers",
            json={
                "name": "mock",
                "type": "openai_compatible",
                "base_url": mock.url + "/v1",
                "credentials": {"api_key": UPSTREAM_KEY},
            },
        ),
        201,
    )
    for name, upstream in (("gpt-4o-mini", "gpt-4o-mini~echo"), ("other-model", "gpt-4o")):
        gw.ok(
            gw.admin.post(
                "/models",
                json={"name": name, "deployments": [{"provider": "mock", "model": upstream}]},
            ),
            201,
        )


def _team(gw: Gateway, name: str) -> int:
    return int(gw.ok(gw.admin.post("/teams", json={"name": name}), 201)["id"])


def _service(gw: Gateway, team_id: int, name: str, body: dict[str, Any], **extra: Any) -> int:
    created = gw.ok(
        gw.admin.post(
            "/services",
            json={
                "team_id": team_id,
                "name": name,
                "route_prefix": f"/{name}",
                "visibility": "public",
                **extra,
            },
        ),
        201,
    )
    service_id = int(created["id"])
    version = gw.ok(gw.admin.post(f"/services/{service_id}/versions", json=body), 201)
    gw.ok(gw.admin.post(f"/services/{service_id}/versions/{version['number']}/publish"))
    return service_id


def test_subscriptions_and_keys_are_enforced_on_every_worker(gateway: Gateway) -> None:
    gw = gateway
    ml, payments = _team(gw, "ml"), _team(gw, "payments")
    chat = _service(gw, ml, "chat", {"models": ["gpt-4o-mini"]}, kind="ai", approval="manual")
    app = int(gw.ok(gw.admin.post("/apps", json={"team_id": payments, "name": "bot"}), 201)["id"])
    created = gw.ok(gw.admin.post(f"/apps/{app}/keys", json={"name": "prod"}), 201)
    key, key_id = created["key"], created["id"]
    client = gw.openai(key)

    def chat_call() -> Any:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    # A key the gateway has not heard of yet answers 401; once it has, 403: not subscribed.
    gw.until("key known", lambda: status_of(chat_call)[0] == 403)
    assert status_of(chat_call) == (403, "subscription_required")
    with pytest.raises(openai.PermissionDeniedError, match="not subscribed"):
        chat_call()

    subscription = gw.ok(
        gw.admin.post("/subscriptions", json={"app_id": app, "service_id": chat}), 201
    )
    assert subscription["status"] == "pending"
    gw.until("pending", lambda: status_of(chat_call) == (403, "subscription_pending"))
    # In Anthropic's own error format on its API.
    ant = anthropic.Anthropic(base_url=gw.process.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ant.messages.create(model="gpt-4o-mini", max_tokens=10, messages=MESSAGES)
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert "waiting for approval" in refused.value.body["error"]["message"]  # type: ignore[index]

    gw.ok(gw.admin.post(f"/subscriptions/{subscription['id']}/approve"))
    gw.until("approval", lambda: status_of(chat_call)[0] == 200)
    assert chat_call().choices[0].message.content == "hi"
    assert ant.messages.create(model="gpt-4o-mini", max_tokens=10, messages=MESSAGES).content
    # Under the service's own prefix, too; a model the service does not grant is not there.
    assert (
        gw.openai(key, "/chat")
        .chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        .choices
    )
    assert status_of(
        lambda: gw.openai(key, "/chat").chat.completions.create(
            model="other-model", messages=MESSAGES
        )
    ) == (404, "model_not_found")
    # A model no subscription grants reads as missing; the model list shows the granted only.
    assert status_of(
        lambda: client.chat.completions.create(model="other-model", messages=MESSAGES)
    ) == (404, "model_not_found")
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]

    gw.ok(gw.admin.post(f"/subscriptions/{subscription['id']}/revoke", json={"reason": "misuse"}))
    gw.until("subscription revoked", lambda: status_of(chat_call) == (403, "subscription_revoked"))

    gw.ok(gw.admin.post("/subscriptions", json={"app_id": app, "service_id": chat}), 201)
    gw.ok(gw.admin.post(f"/subscriptions/{subscription['id']}/approve"))
    gw.until("approved again", lambda: status_of(chat_call)[0] == 200)

    gw.ok(gw.admin.post(f"/apps/{app}/keys/{key_id}/revoke"))
    gw.until("key revoked", lambda: status_of(chat_call) == (401, "revoked_api_key"))

    print("time for a change to reach every worker:", json.dumps(gw.delays))
    assert set(gw.delays) >= {"approval", "subscription revoked", "key revoked"}


def test_a_rest_service_is_forwarded_under_its_prefix(gateway: Gateway, mock: Process) -> None:
    gw = gateway
    team = gw.ok(gw.admin.get("/teams", params={"name": "ml"}))["items"]
    ml = team[0]["id"] if team else _team(gw, "ml")
    payments = _team(gw, "ops")
    rest = _service(
        gw,
        ml,
        "mockapi",
        {
            "upstream": {
                "targets": [{"url": mock.url}],
                # The upstream's own credentials travel as a static header of the service.
                "headers": {"X-Service": "mockapi", "Authorization": f"Bearer {UPSTREAM_KEY}"},
            }
        },
        kind="rest",
        approval="auto",
    )
    app = int(gw.ok(gw.admin.post("/apps", json={"team_id": payments, "name": "ops"}), 201)["id"])
    key = gw.ok(gw.admin.post(f"/apps/{app}/keys", json={"name": "k"}), 201)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    url = gw.process.url + "/mockapi/_mock/stats"
    gw.until("key known", lambda: httpx.get(url, headers=headers).status_code == 403)
    assert httpx.get(url, headers=headers).json()["error"]["code"] == "subscription_required"
    gw.ok(gw.admin.post("/subscriptions", json={"app_id": app, "service_id": rest}), 201)
    gw.until("auto approval", lambda: httpx.get(url, headers=headers).status_code == 200)
    assert httpx.get(url, headers=headers).json()["name"] == "mock"
    # A POST with a body, and what reached the upstream: the path without the prefix, the
    # service's headers, and never the caller's gateway key.
    body = {"model": "gpt-4o~echo", "messages": [{"role": "user", "content": "via rest"}]}
    answer = httpx.post(
        gw.process.url + "/mockapi/v1/chat/completions?trace=1",
        headers={**headers, "x-api-key": key},
        json=body,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "via rest"
    seen = httpx.get(mock.url + "/_mock/requests").json()[-1]
    assert seen["path"].startswith("/v1/chat/completions")
    lowered = {name.lower(): value for name, value in seen["headers"].items()}
    assert lowered.get("x-service") == "mockapi"
    assert lowered.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert key not in json.dumps(seen)


def test_a_store_outage_leaves_the_data_plane_serving_and_readyz_saying_so(
    workdir: Path, mock: Process
) -> None:
    cluster = PostgresCluster()
    gw = start_on_store(workdir, ["--store", new_database(cluster.url)], workers=1)
    try:
        _declare_models(gw, mock)
        team = _team(gw, "ml")
        chat = _service(gw, team, "chat", {"models": ["gpt-4o-mini"]}, kind="ai", approval="auto")
        app = int(gw.ok(gw.admin.post("/apps", json={"team_id": team, "name": "a"}), 201)["id"])
        key = gw.ok(gw.admin.post(f"/apps/{app}/keys", json={"name": "k"}), 201)["key"]
        gw.ok(gw.admin.post("/subscriptions", json={"app_id": app, "service_id": chat}), 201)
        client = gw.openai(key)

        def chat_call() -> Any:
            return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        gw.until("ready to call", lambda: status_of(chat_call)[0] == 200)
        ready = gw.process.url + "/readyz"
        assert httpx.get(ready).json() == {"status": "ready"}

        cluster.pause()
        gw.until("degraded", lambda: httpx.get(ready).json()["status"] == "degraded")
        answer = httpx.get(ready)
        assert answer.status_code == 200 and answer.json()["configuration_version"] >= 1
        # Served on the last configuration, store or no store.
        assert [status_of(chat_call)[0] for _ in range(5)] == [200] * 5

        cluster.resume()
        gw.until("ready again", lambda: httpx.get(ready).json() == {"status": "ready"})
        subscriptions = gw.ok(gw.admin.get("/subscriptions", params={"app_id": app}))["items"]
        gw.ok(gw.admin.post(f"/subscriptions/{subscriptions[0]['id']}/cancel"))
        gw.until("changes flow again", lambda: status_of(chat_call)[0] == 403)
    finally:
        gw.admin.close()
        gw.process.stop()
        cluster.stop()


def test_an_unreachable_store_at_start_is_a_clear_error(workdir: Path) -> None:
    port = free_port()
    process = start_gateway(
        workdir, None, "--store", f"postgresql://nobody@127.0.0.1:{port}/none", wait=False
    )
    assert process.wait(30) == 2
    assert "cannot use the store at postgresql://nobody@127.0.0.1" in process.log()
