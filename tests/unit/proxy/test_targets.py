"""REST target pools without I/O: each strategy's choices, consistent hashing's key movement,
passive ejection and probation, probes, the canary split and version pins."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import replace
from typing import Any

import pytest

from tollway.config.rest_service import (
    ActiveHealthCheck,
    PassiveHealthCheck,
    RestBackend,
    RestService,
    RestTarget,
)
from tollway.config.transport import Origin, UpstreamTimeouts
from tollway.proxy import consistent_hash
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.targets import TargetPools
from tollway.proxy.upstream import UpstreamError


class Req:
    """What target selection reads of a request."""

    def __init__(self, path: str = "/", address: str = "10.0.0.1", **headers: str) -> None:
        self.path = path
        self.client_address = address
        self.headers = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        self.method = "GET"
        self.query = b""
        self.body = b""
        self.request_id = b"r"

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def target(i: int, weight: int = 1) -> RestTarget:
    url = f"http://10.1.0.{i}:8080"
    origin = Origin.from_url(url)
    seed = int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest())
    return RestTarget(
        f"t{i}", origin, UpstreamTimeouts(), origin.host_header, weight, url=url, seed=seed
    )


def backend(strategy: str, *targets: RestTarget, **extra: Any) -> RestBackend:
    return RestBackend(
        key="1/1", service_id=1, version=1, targets=targets, strategy=strategy, **extra
    )


def names(pools: TargetPools, b: RestBackend, count: int, req: Any = None) -> list[str]:
    out = []
    for _ in range(count):
        picked = pools.pick(b, req or Req())
        assert picked is not None
        out.append(picked.name)
    return out


def test_round_robin_ignores_weights_and_skips_what_is_out() -> None:
    pools = TargetPools(Deadlines())
    b = backend("round_robin", target(1, 5), target(2), target(3))
    assert names(pools, b, 6) == ["t1", "t2", "t3", "t1", "t2", "t3"]
    pools.state(b, b.targets[1]).healthy = False
    assert names(pools, b, 4) == ["t1", "t3", "t1", "t3"]


def test_weighted_is_smooth_and_exact() -> None:
    pools = TargetPools(Deadlines())
    b = backend("weighted", target(1, 3), target(2, 1))
    assert names(pools, b, 8) == ["t1", "t1", "t2", "t1"] * 2
    counts = collections.Counter(names(pools, backend("weighted", *_weighted()), 1000))
    assert counts == {"t1": 500, "t2": 300, "t3": 200}


def _weighted() -> list[RestTarget]:
    return [target(1, 5), target(2, 3), target(3, 2)]


def test_least_connections_takes_the_least_loaded_and_spreads_ties() -> None:
    pools = TargetPools(Deadlines())
    b = backend("least_connections", target(1), target(2, 2), target(3))
    assert sorted(names(pools, b, 3)) == ["t1", "t2", "t3"]
    pools.state(b, b.targets[0]).in_flight = 3
    pools.state(b, b.targets[1]).in_flight = 4  # weight 2: a load of 2
    pools.state(b, b.targets[2]).in_flight = 1
    assert names(pools, b, 2) == ["t3", "t3"]
    pools.state(b, b.targets[2]).in_flight = 9
    assert names(pools, b, 1) == ["t2"]


def test_consistent_hash_on_a_header_the_address_or_the_path() -> None:
    pools = TargetPools(Deadlines())
    by_header = backend(
        "consistent_hash",
        *[target(i) for i in range(1, 6)],
        hash_on="header",
        hash_header=b"x-user",
    )
    first = {user: names(pools, by_header, 1, Req(x_user=user))[0] for user in "abcdefgh"}
    assert all(
        names(pools, by_header, 3, Req(x_user=user)) == [chosen] * 3
        for user, chosen in first.items()
    )
    # Without the header, the client's address decides.
    assert names(pools, by_header, 2, Req(address="10.9.9.9")) == names(
        pools, replace(by_header, hash_on="client_address"), 2, Req(address="10.9.9.9")
    )
    by_path = replace(by_header, hash_on="path", hash_header=None)
    assert len({names(pools, by_path, 1, Req(path=f"/p/{i}"))[0] for i in range(50)}) == 5
    assert names(pools, by_path, 3, Req(path="/p/1")) == names(pools, by_path, 1, Req("/p/1")) * 3


def test_rendezvous_moves_only_the_keys_of_a_target_that_leaves() -> None:
    targets = [target(i) for i in range(1, 9)]
    keys = [f"user-{i}".encode() for i in range(20000)]
    before = {key: consistent_hash.choose(key, targets).name for key in keys}
    shares = collections.Counter(before.values())
    assert max(abs(n / len(keys) - 1 / 8) for n in shares.values()) < 0.01
    gone = targets[3]
    after = {key: consistent_hash.choose(key, targets[:3] + targets[4:]).name for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    # Exactly the keys the leaving target held, and no other.
    assert all(before[key] == gone.name for key in moved)
    assert len(moved) == shares[gone.name]
    assert abs(len(moved) / len(keys) - 1 / 8) < 0.01


def test_rendezvous_weights() -> None:
    targets = [target(1, 1), target(2, 3)]
    counts = collections.Counter(
        consistent_hash.choose(f"k{i}".encode(), targets).name for i in range(40000)
    )
    assert abs(counts["t2"] / 40000 - 0.75) < 0.01


def test_every_target_out_still_serves_and_tried_ones_are_skipped() -> None:
    pools = TargetPools(Deadlines())
    b = backend("round_robin", target(1), target(2))
    for t in b.targets:
        pools.state(b, t).healthy = False
    assert pools.pick(b, Req()) is not None
    picked = pools.pick(b, Req(), ["t1"])
    assert picked is not None and picked.name == "t2"
    assert pools.pick(b, Req(), ["t1", "t2"]) is None


def test_passive_ejection_probation_and_doubling(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("tollway.proxy.targets.time.monotonic", lambda: now[0])
    pools = TargetPools(Deadlines())
    b = backend(
        "round_robin",
        target(1),
        target(2),
        passive_check=PassiveHealthCheck(failures=3, eject_s=10, max_eject_s=25),
    )
    bad = b.targets[0]
    state = pools.state(b, bad)
    pools.failed(b, bad, "refused")
    pools.succeeded(b, bad)
    pools.failed(b, bad, "refused")
    pools.failed(b, bad, "refused")
    assert state.available(now[0])  # a success broke the run
    pools.failed(b, bad, "refused")
    assert not state.available(now[0])
    assert names(pools, b, 3) == ["t2"] * 3
    now[0] += 10.5
    assert state.available(now[0])
    # On probation: one failure ejects again, for twice as long; then capped.
    pools.failed(b, bad, "refused")
    assert state.ejected_until == pytest.approx(now[0] + 20)
    now[0] += 20.5
    pools.failed(b, bad, "refused")
    assert state.ejected_until == pytest.approx(now[0] + 25)
    now[0] += 25.5
    pools.succeeded(b, bad)
    assert state.ejections == 0
    pools.failed(b, bad, "refused")
    assert state.available(now[0])


def test_probes_take_a_target_out_and_bring_it_back() -> None:
    pools = TargetPools(Deadlines())
    check = ActiveHealthCheck(healthy_threshold=2, unhealthy_threshold=3)
    b = backend("round_robin", target(1), target(2), active_check=check)
    t = b.targets[0]
    state = pools.state(b, t)
    for _ in range(2):
        pools.probed(b, t, False, "answered 503")
    assert state.healthy
    pools.probed(b, t, False, "answered 503")
    assert not state.healthy
    pools.probed(b, t, True, "")
    assert not state.healthy
    pools.probed(b, t, True, "")
    assert state.healthy
    # Passing probes also end a passive ejection.
    for _ in range(5):
        pools.failed(b, t, "refused")
    assert state.ejected_until > 0
    pools.probed(b, t, True, "")
    pools.probed(b, t, True, "")
    assert state.ejected_until == 0.0


def test_canary_split_and_version_pins() -> None:
    pools = TargetPools(Deadlines())
    primary = backend("round_robin", target(1))
    canary = replace(primary, key="1/2", version=2, targets=(target(2),))
    for weight, expected in ((0, 0), (10, 100), (37, 370), (100, 1000)):
        rest = RestService(primary, canary, weight)
        chosen = collections.Counter(pools.backend(rest, 1, Req()).version for _ in range(1000))
        assert chosen[2] == expected, weight
    rest = RestService(primary, canary, 0)
    assert pools.backend(rest, 1, Req(x_tollway_version="2")) is canary
    assert pools.backend(rest, 1, Req(x_tollway_version="7")) is primary
    assert pools.backend(RestService(primary), 1, Req(x_tollway_version="2")) is primary


def test_a_bad_ca_file_is_an_upstream_error() -> None:
    pools = TargetPools(Deadlines())
    t = replace(target(1), origin=Origin.from_url("https://x.io"), ca_file="/nonexistent.pem")
    with pytest.raises(UpstreamError, match="cannot use the CA file"):
        pools.upstream_pool(t)
