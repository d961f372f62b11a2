"""REST services balanced over real targets, end to end: `tollway serve` on a store with two
workers, configured through the admin API, in front of target processes on 127.0.0.1.

Each strategy's distribution is checked over hundreds of calls (the error, the largest gap
between a target's share and its expected share, is printed: run with -s to see it);
consistent hashing moves only the removed target's keys; a target killed under load costs
the clients nothing while others are healthy, is ejected, and is probed back once it
recovers (the times are printed); retries go only to idempotent methods unless the service
says otherwise, and never once the client has had a byte; the canary takes its share, a
version can be pinned, and a switch takes effect on every worker in well under a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from rest_services import RestGateway, shares
from rest_targets import Target, free_port


@pytest.fixture(scope="module")
def gw(workdir: Path) -> Iterator[RestGateway]:
    gateway = RestGateway(workdir, workers=2)
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def targets(workdir: Path) -> Iterator[dict[str, Target]]:
    started = {name: Target(workdir, name).start() for name in "abcd"}
    yield started
    for target in started.values():
        target.stop()


def _pool(*members: tuple[Target, int], **settings: Any) -> dict[str, Any]:
    return {"targets": [{"url": t.url, "weight": w} for t, w in members], **settings}


def _names(gw: RestGateway, path: str, count: int, **headers: str) -> list[str]:
    """The targets of `count` calls on one keep-alive connection."""
    with httpx.Client(base_url=gw.url, headers={**gw.headers, **headers}, timeout=30) as client:
        return [client.get(path).json()["target"] for _ in range(count)]


def test_each_strategy_shares_the_calls_as_it_says(
    gw: RestGateway, targets: dict[str, Target]
) -> None:
    a, b, c = targets["a"], targets["b"], targets["c"]
    errors = {}
    cases: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
        # Weights are the weighted strategy's; round-robin ignores them.
        "round_robin": (_pool((a, 3), (b, 1), (c, 1), strategy="round_robin"), {}),
        "weighted": (_pool((a, 5), (b, 3), (c, 2)), {"a": 0.5, "b": 0.3, "c": 0.2}),
        "least_connections": (_pool((a, 1), (b, 1), (c, 1), strategy="least_connections"), {}),
    }
    for strategy, (upstream, expected) in cases.items():
        name = "lb-" + strategy.replace("_", "-")
        gw.service(name, upstream)
        got, error = shares(
            _names(gw, f"/{name}/x", 600), expected or {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
        )
        errors[strategy] = round(error, 4)
        assert error < 0.02, (strategy, got)

    gw.service(
        "lb-hash",
        _pool(
            (a, 1),
            (b, 1),
            (c, 1),
            strategy="consistent_hash",
            hash={"on": "header", "header": "x-user"},
        ),
    )
    with httpx.Client(base_url=gw.url, headers=gw.headers, timeout=30) as client:
        chosen = {
            user: client.get("/lb-hash/x", headers={"x-user": user}).json()["target"]
            for user in (f"user-{i}" for i in range(3000))
        }
        # The same key, the same target (on a fresh connection: either worker).
        for user in list(chosen)[:30]:
            assert gw.target_of("/lb-hash/x", **{"x-user": user}) == chosen[user]
    got, error = shares(list(chosen.values()), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    errors["consistent_hash"] = round(error, 4)
    # 3,000 keys: a share's standard deviation is 0.0086; this is over four of them.
    assert error < 0.04, got
    print("distribution error by strategy (largest gap to the expected share):", errors)


def test_least_connections_spares_a_slow_target(workdir: Path, gw: RestGateway) -> None:
    fast = [Target(workdir, name).start() for name in ("f1", "f2")]
    slow = Target(workdir, "slow", "--sleep-ms", "250").start()
    try:
        members = [(fast[0], 1), (fast[1], 1), (slow, 1)]
        gw.service("lc-slow", _pool(*members, strategy="least_connections"))
        gw.service("rr-slow", _pool(*members, strategy="round_robin"))

        def slow_share(path: str) -> float:
            seen: list[str] = []

            def client() -> None:
                seen.extend(_names(gw, path, 15))

            threads = [threading.Thread(target=client) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return seen.count("slow") / len(seen)

        least, turns = slow_share("/lc-slow/x"), slow_share("/rr-slow/x")
        print(f"slow target's share: least connections {least:.3f}, round robin {turns:.3f}")
        assert abs(turns - 1 / 3) < 0.05
        assert least < 0.15
    finally:
        for target in (*fast, slow):
            target.stop()


def test_consistent_hashing_moves_only_the_keys_of_a_removed_target(
    gw: RestGateway, targets: dict[str, Target]
) -> None:
    members = [(targets[name], 1) for name in "abcd"]
    hashed = {"strategy": "consistent_hash", "hash": {"on": "header", "header": "x-user"}}
    sid = gw.service("hash-move", _pool(*members, **hashed))
    users = [f"customer-{i}" for i in range(1200)]

    def mapping() -> dict[str, str]:
        with httpx.Client(base_url=gw.url, headers=gw.headers, timeout=30) as client:
            return {
                user: client.get("/hash-move/x", headers={"x-user": user}).json()["target"]
                for user in users
            }

    before = mapping()
    on_d = next(user for user, target in before.items() if target == "d")
    gw.publish(sid, _pool(*members[:3], **hashed))
    gw.until("d removed", lambda: gw.target_of("/hash-move/x", **{"x-user": on_d}) != "d")
    after = mapping()
    moved = [user for user in users if before[user] != after[user]]
    held = sum(target == "d" for target in before.values())
    print(
        f"consistent hashing: {len(moved)} of {len(users)} keys moved "
        f"({len(moved) / len(users):.3f}) when one target of 4 left; it held {held}"
    )
    assert all(before[user] == "d" for user in moved)
    assert len(moved) == sum(target == "d" for target in before.values())
    assert len(moved) / len(users) < 1 / 4 + 0.05


def _first_logged(gw: RestGateway, needle: str, since: float) -> dict[str, float]:
    """When each worker (by process id) first logged a line holding `needle` after `since`
    (epoch seconds)."""
    first: dict[str, float] = {}
    for line in gw.process.log().splitlines():
        if needle in line and "tollway.proxy[" in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            worker = line.split("tollway.proxy[", 1)[1].split("]", 1)[0]
            if stamp >= since - 0.001 and worker not in first:
                first[worker] = stamp
    return first


def test_a_target_killed_under_load_costs_no_client_error_and_is_probed_back(
    workdir: Path, gw: RestGateway
) -> None:
    pool = [Target(workdir, name).start() for name in ("k1", "k2", "k3")]
    victim = pool[1]
    try:
        sid = gw.service(
            "resilient",
            _pool(
                *[(t, 1) for t in pool],
                strategy="round_robin",
                health_checks={
                    "active": {
                        "path": "/health",
                        "interval_s": 0.25,
                        "timeout_s": 1,
                        "healthy_threshold": 2,
                        "unhealthy_threshold": 2,
                    },
                    "passive": {"failures": 3, "eject_s": 30},
                },
            ),
        )
        results: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=gw.url, headers=gw.headers, timeout=30) as http:
                while not stop.is_set():
                    answer = http.get("/resilient/x?sleep_ms=5")
                    target = answer.json().get("target", "") if answer.status_code == 200 else ""
                    results.append((time.time(), answer.status_code, target))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        killed_at = time.time()
        victim.kill()
        time.sleep(2.0)
        stop.set()
        for thread in threads:
            thread.join()
        failures = [r for r in results if r[1] != 200]
        after = [r for r in results if r[0] > killed_at]
        assert len(after) > 100 and not failures, (failures[:5], gw.process.log()[-3000:])
        assert {r[2] for r in results if r[0] < killed_at} == {"k1", "k2", "k3"}
        out = _first_logged(gw, f"{victim.url} of service {sid}", killed_at)
        assert len(out) == 2, gw.process.log()[-3000:]
        eject_s = max(out.values()) - killed_at  # both workers have taken it out by then

        victim.start()
        restarted_at = time.time()
        gw.until("k2 back", lambda: "k2" in {gw.target_of("/resilient/x") for _ in range(6)})
        back = _first_logged(gw, f"{victim.url} of service {sid} is back", restarted_at)
        assert len(back) == 2, gw.process.log()[-3000:]
        back_s = max(back.values()) - restarted_at
        print(
            f"killed target: {len(after)} calls after the kill, {len(failures)} failed; out of "
            f"rotation on every worker {eject_s:.2f} s after the kill; back {back_s:.2f} s "
            "after it restarted (probes every 0.25 s, 2 to pass)"
        )
        assert back_s < 5
    finally:
        for target in pool:
            target.stop()


def test_passive_ejection_without_probes_ends_after_its_time(
    workdir: Path, gw: RestGateway
) -> None:
    port = free_port()
    steady = Target(workdir, "steady").start()
    flaky = Target(workdir, "flaky", port=port)
    try:
        sid = gw.service(
            "passive",
            {
                "targets": [{"url": steady.url}, {"url": flaky.url}],
                "strategy": "round_robin",
                "health_checks": {"passive": {"failures": 2, "eject_s": 1.5}},
            },
        )
        assert sid
        # The flaky target is down: each call's retry covers it, and after two failures it
        # is ejected (on the worker that saw them).
        names = _names(gw, "/passive/x", 20)
        assert set(names) == {"steady"}
        flaky.start()
        time.sleep(1.6)
        # Back after its ejection: it gets calls again.
        assert "flaky" in _names(gw, "/passive/x", 10)
    finally:
        steady.stop()
        flaky.stop()


def test_retries_only_for_idempotent_methods(workdir: Path, gw: RestGateway) -> None:
    live = Target(workdir, "live").start()
    failing = Target(workdir, "failing", "--fail-status", "503").start()
    dead = f"http://127.0.0.1:{free_port()}"
    no_passive = {"passive": {"failures": 0}}
    try:
        for name, extra in (("retry", {}), ("retry-all", {"non_idempotent": True})):
            gw.service(
                name,
                {
                    "targets": [{"url": dead}, {"url": live.url}],
                    "strategy": "round_robin",
                    "health_checks": no_passive,
                    "retries": {"attempts": 1, **extra},
                },
            )
        with httpx.Client(base_url=gw.url, headers=gw.headers, timeout=30) as client:
            assert {client.get("/retry/x").status_code for _ in range(20)} == {200}
            assert {client.delete("/retry/x").status_code for _ in range(10)} == {200}
            posts = [client.post("/retry/x", content=b"{}").status_code for _ in range(20)]
            assert posts.count(502) == 10 and posts.count(200) == 10
            refused = client.post("/retry/x", content=b"{}")
            if refused.status_code == 200:
                refused = client.post("/retry/x", content=b"{}")
            assert refused.json()["error"]["code"] == "upstream_connect"
            assert {client.post("/retry-all/x").status_code for _ in range(20)} == {200}
            # A streamed upload is sent again: the dead target took none of it.
            body = bytes(range(256)) * 4096
            for _ in range(2):
                answer = client.put("/retry/upload", content=iter([body[:500_000], body[500_000:]]))
                assert answer.status_code == 200 and answer.json()["bytes"] == len(body)

        gw.service(
            "retry-503",
            {
                "targets": [{"url": failing.url}, {"url": live.url}],
                "strategy": "round_robin",
                "health_checks": no_passive,
                "retries": {"on_statuses": [503]},
            },
        )
        gw.service(
            "no-retry-503",
            {
                "targets": [{"url": failing.url}, {"url": live.url}],
                "strategy": "round_robin",
                "health_checks": no_passive,
            },
        )
        with httpx.Client(base_url=gw.url, headers=gw.headers, timeout=30) as client:
            assert {client.get("/retry-503/x").status_code for _ in range(10)} == {200}
            assert {client.get("/no-retry-503/x").status_code for _ in range(10)} == {200, 503}
    finally:
        live.stop()
        failing.stop()


def test_no_retry_once_the_client_has_had_a_byte(
    gw: RestGateway, targets: dict[str, Target]
) -> None:
    a, b = targets["a"], targets["b"]
    gw.service("cut", _pool((a, 1), (b, 1), strategy="round_robin"))
    before = sum(t.stats().get("/download", 0) for t in (a, b))
    received = 0
    path = "/cut/download?bytes=8000000&cut_at=2000000"
    with pytest.raises(httpx.HTTPError), gw.client.stream("GET", path) as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_bytes():
            received += len(chunk)
    assert 0 < received < 8_000_000
    # One target saw the request; the other was not asked to start again.
    assert sum(t.stats().get("/download", 0) for t in (a, b)) == before + 1


def test_canary_split_pins_and_blue_green_switch(
    gw: RestGateway, targets: dict[str, Target]
) -> None:
    blue, green = targets["a"], targets["b"]
    sid = gw.service("release", _pool((blue, 1)))
    green_version = gw.version(sid, _pool((green, 1)))
    canary = f"/services/{sid}/versions/{green_version}/canary"
    gw.ok(gw.admin.post(canary, json={"weight": 20}))
    gw.until("canary live", lambda: "b" in {gw.target_of("/release/x") for _ in range(10)})
    got, error = shares(_names(gw, "/release/x", 500), {"a": 0.8, "b": 0.2})
    print(f"canary at 20%: shares {got}, error {error:.4f}")
    assert error < 0.02
    # Either version by number, whatever the weights.
    assert gw.target_of("/release/x", **{"x-tollway-version": str(green_version)}) == "b"
    assert gw.target_of("/release/x", **{"x-tollway-version": "1"}) == "a"
    # Blue-green: all calls to green at once (weight 100), then promoted; rolled back.
    gw.ok(gw.admin.post(canary, json={"weight": 100}))
    switch_s = gw.until("switch", lambda: gw.target_of("/release/x") == "b")
    gw.ok(gw.admin.post(f"/services/{sid}/versions/{green_version}/publish"))
    gw.until("promoted", lambda: gw.target_of("/release/x") == "b")
    gw.ok(gw.admin.post(f"/services/{sid}/rollback", json={}))
    rollback_s = gw.until("rolled back", lambda: gw.target_of("/release/x") == "a")
    print(f"blue-green: switch in effect after {switch_s:.2f} s, rollback after {rollback_s:.2f} s")
    assert set(_names(gw, "/release/x", 20)) == {"a"}
