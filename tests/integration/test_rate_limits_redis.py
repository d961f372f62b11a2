"""Rate limits and budgets across nodes: two gateways (`--workers 2` each) sharing one real
redis-server of the test's own; the limits stay exact, and when Redis stops or stalls no call
waits on it and the documented fallback holds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateways import UPSTREAM_KEY
from limits_helpers import SECOND_KEY, RedisServer, chat, fire, limited_gateway
from servers import Process, get_json, start_mock

# A generous bound for "no call waits on Redis": the design waits at most 50 ms on Redis, and
# a loaded 2-core test machine adds its own scheduling delays around that (a full suite in two
# processes saw 1.2 s). A call that did wait on a stalled Redis would wait for good: any bound
# well under the client's timeout tells the two apart.
PROMPT_S = 3.0


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_mock(tmp_path_factory.mktemp("limits-redis"), api_key=UPSTREAM_KEY)
    yield process
    process.stop()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def two_nodes(
    workdir: Path,
    upstream: Process,
    redis: RedisServer,
    env: dict[str, str] | None = None,
    **sections: object,
) -> list[Process]:
    nodes = [limited_gateway(workdir, upstream, "--redis", redis.url, env=env, **sections)]
    try:
        nodes.append(limited_gateway(workdir, upstream, "--redis", redis.url, env=env, **sections))
    except BaseException:
        nodes[0].stop()
        raise
    return nodes


def test_two_nodes_admit_exactly_the_limits(
    tmp_path: Path, upstream: Process, redis: RedisServer
) -> None:
    rules = [
        {"scope": "model", "match": ["gpt-4o-mini"], "requests_per_minute": 10},
        {"scope": "model", "match": ["slow"], "tokens_per_minute": 700},
        {"scope": "key", "match": ["second"], "concurrent": 3},
    ]
    nodes = two_nodes(tmp_path, upstream, redis, rate_limits={"rules": rules})
    urls = [node.url for node in nodes]
    try:
        burst = fire(urls, 40, chat())
        assert burst.statuses == {200: 10, 429: 30}, f"the burst took {burst.slowest_s:.1f} s"
        # Concurrency across both nodes: 3 slow calls at a time, whoever serves them.
        assert fire(urls, 12, chat("slow", max_tokens=1), key=SECOND_KEY).statuses == {
            200: 3,
            429: 9,
        }
        # Tokens: 123 estimated a call (see test_rate_limits), 700 a minute: 5 calls.
        tokens = fire(urls, 20, chat("slow", max_tokens=100, text="count to three"))
        assert tokens.statuses == {200: 5, 429: 15}
        assert redis.client().exists("tollway:r:model:gpt-4o-mini")
    finally:
        for node in nodes:
            node.stop()


def test_with_redis_down_limits_fall_back_to_each_nodes_share_and_budgets_refuse(
    tmp_path: Path, upstream: Process, redis: RedisServer
) -> None:
    rules = [{"scope": "key", "match": ["tests"], "requests_per_minute": 10}]
    budgets = {"rules": [{"scope": "key", "match": ["second"], "amount_usd": "5"}]}
    nodes = two_nodes(tmp_path, upstream, redis, rate_limits={"rules": rules}, budgets=budgets)
    urls = [node.url for node in nodes]
    try:
        time.sleep(1.5)  # every worker's heartbeat has counted both nodes
        assert fire(urls, 2, chat(), key=SECOND_KEY).statuses == {200: 2}
        redis.stop()
        # Each node now counts its share, 10 / 2 nodes = 5, in its own shared memory.
        results = fire(urls, 40, chat())
        assert results.statuses == {200: 10, 429: 30}
        assert results.slowest_s < PROMPT_S
        # Budgets fail closed.
        refused = fire(urls, 4, chat(), key=SECOND_KEY)
        assert refused.statuses == {503: 4}
        assert refused.answers[0].json()["error"]["code"] == "budget_unavailable"
        assert refused.slowest_s < PROMPT_S
        for url in urls:
            ready = get_json(url + "/readyz")
            assert ready["status"] == "degraded" and "redis" in ready["counters"]
        # Back within seconds of Redis returning, and exact again.
        redis.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(get_json(url + "/readyz")["status"] == "ready" for url in urls):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the nodes did not use Redis again")
        time.sleep(1.2)  # heartbeats: both nodes counted again
        assert fire(urls, 4, chat(), key=SECOND_KEY).statuses == {200: 4}
        spent = redis.client().keys("tollway:b:key:file:second:*")
        assert spent, "the budget's spend reached Redis"
    finally:
        for node in nodes:
            node.stop()


def test_a_stalled_redis_delays_no_call(
    tmp_path: Path, upstream: Process, redis: RedisServer
) -> None:
    rules = [{"scope": "key", "requests_per_minute": 1000}]
    nodes = two_nodes(tmp_path, upstream, redis, rate_limits={"rules": rules})
    urls = [node.url for node in nodes]
    assert redis.proc is not None
    try:
        assert fire(urls, 4, chat()).statuses == {200: 4}
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            # A blackholed Redis: each call waits at most the 50 ms deadline, then the
            # fallback decides (and later calls do not wait at all for a second).
            results = fire(urls, 20, chat())
            assert results.statuses == {200: 20}
            assert results.slowest_s < PROMPT_S
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(get_json(url + "/readyz")["status"] == "ready" for url in urls):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the nodes did not use Redis again")
    finally:
        for node in nodes:
            node.stop()
