"""Model routing and resilience against real processes: strategies, retries, fallbacks and
circuit breakers, with the mock provider's faults. Each test runs its own gateway and counts
what each mock saw."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import HOST, Process, free_port, get_json, post, start_gateway, start_mock

MESSAGES: Any = [{"role": "user", "content": "hello"}]


def provider(url: str, **timeouts: float) -> dict[str, Any]:
    out: dict[str, Any] = {"base_url": url + "/v1", "api_key_env": "MOCK_KEY"}
    if timeouts:
        out["timeouts"] = timeouts
    return out


def gateway_with(workdir: Path, providers: dict[str, Any], models: dict[str, Any]) -> Process:
    from tollway.config.compile import hash_key

    config = {
        "providers": providers,
        "models": models,
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
        "catalog": {
            "tiny-window": {"provider": "openai_compatible", "context_window": 50, "input": 1}
        },
    }
    return start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY})


def requests_seen(mock: Process) -> int:
    return int(get_json(mock.url + "/_mock/stats")["requests"])


# One client for the module: a new httpx client per call costs ~50 ms of TLS set-up alone.
CLIENT = httpx.Client(timeout=30, headers={"authorization": f"Bearer {CLIENT_KEY}"})


def call(gateway: Process, model: str, **extra: Any) -> httpx.Response:
    return CLIENT.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **extra},
    )


@pytest.fixture
def mocks(workdir: Path) -> Iterator[tuple[Process, Process]]:
    a = start_mock(workdir, api_key=UPSTREAM_KEY)
    b = start_mock(workdir, api_key=UPSTREAM_KEY)
    yield a, b
    a.stop()
    b.stop()


def test_a_failing_deployment_costs_the_client_nothing_and_is_ejected(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    good, bad = mocks
    gateway = gateway_with(
        workdir,
        {"good": provider(good.url), "bad": provider(bad.url)},
        {
            "chat": {
                "deployments": [
                    {"provider": "bad", "model": "gpt-4o~status=500", "name": "bad"},
                    {"provider": "good", "model": "gpt-4o~echo", "name": "good"},
                ],
                "routing": {"breaker": {"consecutive_failures": 3, "cooldown_s": 60}},
            }
        },
    )
    try:
        answers = [call(gateway, "chat") for _ in range(40)]
        assert [a.status_code for a in answers] == [200] * 40
        assert {a.headers["x-tollway-deployment"] for a in answers} == {"good"}
        # The broken deployment was tried until its breaker opened, then left alone.
        assert requests_seen(bad) == 3
        retried = [a for a in answers if a.headers["x-tollway-attempts"] == "2"]
        assert len(retried) == 3
    finally:
        gateway.stop()


def test_a_dead_deployment_is_probed_back_after_it_recovers(workdir: Path, mock: Process) -> None:
    port = free_port()
    gateway = gateway_with(
        workdir,
        {"live": provider(mock.url), "later": provider(f"http://{HOST}:{port}")},
        {
            "chat": {
                "deployments": [
                    {"provider": "later", "model": "gpt-4o~echo", "name": "later"},
                    {"provider": "live", "model": "gpt-4o~echo", "name": "live"},
                ],
                "routing": {
                    "strategy": "weighted",
                    "breaker": {"consecutive_failures": 2, "cooldown_s": 1},
                },
            }
        },
    )
    revived = None
    try:
        started = time.monotonic()
        served = [call(gateway, "chat").headers["x-tollway-deployment"] for _ in range(10)]
        assert served == ["live"] * 10  # nothing listens on `later` yet: connect refused
        revived = Process(
            ["mock-provider", "--port", str(port), "--api-key", UPSTREAM_KEY],
            port,
            workdir / f"revived-{port}.log",
        ).wait_ready()
        back = None
        while time.monotonic() - started < 20:
            if call(gateway, "chat").headers["x-tollway-deployment"] == "later":
                back = time.monotonic() - started
                break
            time.sleep(0.05)
        assert back is not None, "the recovered deployment was never tried again"
        shares = [call(gateway, "chat").headers["x-tollway-deployment"] for _ in range(20)]
        assert shares.count("later") == 10  # back to its full share
        print(f"probed back {back:.2f} s after the test started (cooldown 1 s)")
    finally:
        gateway.stop()
        if revived is not None:
            revived.stop()


def test_a_fallback_chain_serves_when_the_primary_fails(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    a, b = mocks
    gateway = gateway_with(
        workdir,
        {"a": provider(a.url), "b": provider(b.url)},
        {
            "primary": {
                "deployments": [{"provider": "a", "model": "gpt-4o~status=503", "name": "a"}],
                "routing": {"retries": 1, "retry_after_cap_s": 0},
                "fallbacks": ["secondary", "tertiary"],
            },
            "secondary": {
                "deployments": [{"provider": "a", "model": "gpt-4o~reset", "name": "reset"}],
                "routing": {"retries": 0},
            },
            "tertiary": {
                "deployments": [{"provider": "b", "model": "gpt-4o~echo", "name": "b"}],
            },
        },
    )
    try:
        answer = call(gateway, "primary")
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "hello"
        assert answer.headers["x-tollway-deployment"] == "b"
        assert answer.headers["x-tollway-attempts"] == "4"  # a, a again, reset, b
    finally:
        gateway.stop()


def test_content_policy_and_context_window_fallbacks(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    a, b = mocks
    gateway = gateway_with(
        workdir,
        {"a": provider(a.url), "b": provider(b.url)},
        {
            "strict": {
                "deployments": [{"provider": "a", "model": "gpt-4o~refuse=content_policy"}],
                "content_policy_fallback": "lenient",
            },
            "lenient": {"deployments": [{"provider": "b", "model": "gpt-4o~echo", "name": "b"}]},
            "small": {
                "deployments": [{"provider": "a", "model": "tiny-window", "name": "small"}],
                "context_window_fallback": "lenient",
            },
        },
    )
    try:
        refused = call(gateway, "strict")
        assert refused.status_code == 200 and refused.headers["x-tollway-deployment"] == "b"
        short = call(gateway, "small")
        assert short.headers["x-tollway-deployment"] == "small"
        long = CLIENT.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "small", "messages": [{"role": "user", "content": "word " * 200}]},
        )
        assert long.status_code == 200 and long.headers["x-tollway-deployment"] == "b"
    finally:
        gateway.stop()


def test_retries_happen_before_the_first_byte_and_never_after_it(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    a, b = mocks
    gateway = gateway_with(
        workdir,
        {"a": provider(a.url), "b": provider(b.url)},
        {
            "resets": {
                "deployments": [
                    {"provider": "a", "model": "gpt-4o~reset", "name": "a"},
                    {"provider": "b", "model": "gpt-4o~chunks=10", "name": "b"},
                ]
            },
            "cuts": {
                "deployments": [
                    {"provider": "a", "model": "gpt-4o~chunks=10,cut_after=3", "name": "a"},
                    {"provider": "b", "model": "gpt-4o~chunks=10", "name": "b"},
                ],
                "routing": {"strategy": "weighted"},
            },
        },
    )
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    try:
        # A reset before any answer: retried on b, the client sees one clean stream.
        for _ in range(4):
            with client.chat.completions.with_streaming_response.create(
                model="resets", messages=MESSAGES, stream=True
            ) as raw:
                assert raw.headers["x-tollway-deployment"] == "b"
                chunks = [c for c in raw.parse() if c.choices and c.choices[0].delta.content]
            assert len(chunks) == 10
        # Cut after 3 chunks on a: the stream fails, and b is not asked to start over.
        before = requests_seen(b)
        with pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(model="cuts", messages=MESSAGES, stream=True):
                pass
        assert requests_seen(b) == before
    finally:
        gateway.stop()


def test_retries_under_total_failure_stay_within_the_retry_budget(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    a, _ = mocks
    gateway = gateway_with(
        workdir,
        {"a": provider(a.url)},
        {
            "down": {
                "deployments": [{"provider": "a", "model": "gpt-4o~status=500"}],
                "routing": {
                    "retries": 3,
                    "retry_budget": 0.2,
                    "backoff_s": 0,
                    "breaker": {"consecutive_failures": 1000000, "min_calls": 1000000},
                },
            }
        },
    )
    try:
        before = requests_seen(a)
        statuses = [call(gateway, "down").status_code for _ in range(200)]
        assert statuses == [500] * 200
        seen = requests_seen(a) - before
        # 1 + budget per call, plus the bank of 10 retries a budget starts with.
        assert seen <= 200 * 1.2 + 10, seen
        print(f"retry amplification under total failure: {seen / 200:.3f}x")
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("strategy", "weights", "expected"),
    [("weighted", (3, 1), (0.75, 0.25)), ("round_robin", (3, 1), (0.5, 0.5))],
)
def test_each_strategy_shares_calls_as_it_says(
    workdir: Path,
    mocks: tuple[Process, Process],
    strategy: str,
    weights: tuple[int, int],
    expected: tuple[float, float],
) -> None:
    a, b = mocks
    gateway = gateway_with(
        workdir,
        {"a": provider(a.url), "b": provider(b.url)},
        {
            "m": {
                "deployments": [
                    {"provider": "a", "model": "gpt-4o~echo", "weight": weights[0]},
                    {"provider": "b", "model": "gpt-4o~echo", "weight": weights[1]},
                ],
                "routing": {"strategy": strategy},
            }
        },
    )
    try:
        before = (requests_seen(a), requests_seen(b))
        calls = 400
        for _ in range(calls):
            assert call(gateway, "m").status_code == 200
        got = (requests_seen(a) - before[0], requests_seen(b) - before[1])
        error = max(abs(g / calls - e) for g, e in zip(got, expected, strict=True))
        print(f"{strategy} distribution error: {error:.4f}")
        assert error < 0.02
    finally:
        gateway.stop()


def test_a_client_may_pin_a_deployment_when_the_model_allows(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    a, b = mocks
    gateway = gateway_with(
        workdir,
        {"a": provider(a.url), "b": provider(b.url)},
        {
            "open": {
                "deployments": [
                    {"provider": "a", "model": "gpt-4o~echo", "name": "a"},
                    {"provider": "b", "model": "gpt-4o~echo", "name": "b"},
                ],
                "routing": {"client_choice": True},
            },
            "closed": {
                "deployments": [
                    {"provider": "a", "model": "gpt-4o~echo", "name": "a"},
                    {"provider": "b", "model": "gpt-4o~echo", "name": "b"},
                ]
            },
        },
    )
    try:
        pinned = [
            CLIENT.post(
                gateway.url + "/v1/chat/completions",
                headers={"x-tollway-deployment": "b"},
                json={"model": model, "messages": MESSAGES},
            ).headers["x-tollway-deployment"]
            for model in ("open", "open", "closed", "closed")
        ]
        assert pinned[:2] == ["b", "b"] and sorted(pinned[2:]) == ["a", "b"]
        unknown = CLIENT.post(
            gateway.url + "/v1/chat/completions",
            headers={"x-tollway-deployment": "z"},
            json={"model": "open", "messages": MESSAGES},
        )
        assert unknown.status_code == 400
        assert json.loads(unknown.content)["error"]["code"] == "invalid_value"
    finally:
        gateway.stop()
        post(a.url + "/_mock/reset")


def test_a_non_streamed_call_is_bounded_in_total_and_a_stream_is_not(
    workdir: Path, mock: Process
) -> None:
    gateway = gateway_with(
        workdir,
        {"slow": provider(mock.url, first_byte_s=5, total_s=0.5)},
        {
            "chat": {
                "deployments": [{"provider": "slow", "model": "gpt-4o~latency_ms=1500"}],
                "routing": {"retries": 0},
            }
        },
    )
    try:
        answer = call(gateway, "chat")
        assert answer.status_code == 504, answer.text
        # The total's deadline ended it, not the first byte's (5 s) nor the upstream.
        assert "in full within 0.5 s" in answer.json()["error"]["message"]
        # A stream has no total bound: its first byte is all that is waited for.
        with CLIENT.stream(
            "POST",
            gateway.url + "/v1/chat/completions",
            json={"model": "chat", "messages": MESSAGES, "stream": True},
        ) as streamed:
            assert streamed.status_code == 200
            assert b"[DONE]" in b"".join(streamed.iter_bytes())
    finally:
        gateway.stop()


BREAKING = {
    "deployments": [
        {"provider": "bad", "model": "gpt-4o~status=503", "name": "bad"},
        {"provider": "good", "model": "gpt-4o~echo", "name": "good"},
    ],
    "routing": {"breaker": {"consecutive_failures": 2, "cooldown_s": 60}},
}


def breakers(samples: str) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(samples):
        if family.name == "tollway_deployment_breakers":
            for s in family.samples:
                out[(s.labels["deployment"], s.labels["state"])] = s.value
    return out


def test_breaker_states_are_in_the_metrics_and_on_the_admin_port(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    good, bad = mocks
    gateway = gateway_with(
        workdir, {"good": provider(good.url), "bad": provider(bad.url)}, {"chat": BREAKING}
    )
    try:
        port = gateway.admin_port

        def seen() -> dict[tuple[str, str], float]:
            return breakers(httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text)

        # The mock's 503 says Retry-After: the deployment is held back a while after each.
        deadline = time.monotonic() + 20
        while seen().get(("bad", "open")) != 1:
            assert time.monotonic() < deadline, seen()
            assert all(call(gateway, "chat").status_code == 200 for _ in range(3))
            time.sleep(0.3)
        states = seen()
        assert states[("good", "closed")] == 1 and states[("good", "open")] == 0
        assert states[("bad", "closed")] == 0 and states[("bad", "half_open")] == 0
        listed = httpx.get(f"http://{HOST}:{port}/deployments", timeout=10).json()["items"]
        by_name = {d["deployment"]: d for d in listed}
        assert by_name["bad"]["state"] == "open" and by_name["bad"]["model"] == "chat"
        assert by_name["bad"]["consecutive_failures"] == 2
        assert 0 < by_name["bad"]["open_for_s"] <= 60
        assert by_name["good"]["state"] == "closed" and by_name["good"]["latency_s"] > 0
    finally:
        gateway.stop()


def test_breaker_states_over_workers_in_the_admin_api(
    workdir: Path, mocks: tuple[Process, Process]
) -> None:
    from tollway.config.compile import hash_key

    good, bad = mocks
    token = "tollway-test-admin-token-0123456789"
    admin_port = free_port()
    config = {
        "providers": {"good": provider(good.url), "bad": provider(bad.url)},
        "models": {"chat": BREAKING},
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }
    gateway = start_gateway(
        workdir,
        config,
        "--data-dir",
        str(workdir / f"store-{admin_port}"),
        "--admin-port",
        str(admin_port),
        env={
            "MOCK_KEY": UPSTREAM_KEY,
            "TOLLWAY_ADMIN_TOKEN": token,
            "TOLLWAY_SECRET_KEY": "tollway-test-secret-key-0123456789abcdef",
        },
        workers=2,
    )
    admin = httpx.Client(
        base_url=f"http://{HOST}:{admin_port}/admin/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    try:
        deadline = time.monotonic() + 20

        def bad_entry() -> dict[str, Any]:
            answer = admin.get("/deployments")
            assert answer.status_code == 200, answer.text
            # Until the workers' first reports reach the recorder, nothing is listed.
            found = [d for d in answer.json()["items"] if d["deployment"] == "bad"]
            return found[0] if found else {}

        # Calls on new connections reach both workers; each opens its own breaker.
        while bad_entry().get("workers") != {"closed": 0, "open": 2, "half_open": 0}:
            assert time.monotonic() < deadline, bad_entry()
            for _ in range(4):
                answer = httpx.post(
                    gateway.url + "/v1/chat/completions",
                    json={"model": "chat", "messages": MESSAGES},
                    headers={"authorization": f"Bearer {CLIENT_KEY}"},
                    timeout=10,
                )
                assert answer.status_code == 200
            time.sleep(0.3)
        assert bad_entry()["state"] == "open"
        assert httpx.get(f"http://{HOST}:{admin_port}/admin/v1/deployments").status_code == 401
    finally:
        admin.close()
        gateway.stop()
