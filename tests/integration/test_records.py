"""Call records, end to end: `tollway serve` on a store with two workers and its recorder.

Every answered call has exactly one record once the gateway has stopped: after a load, after
SIGTERM in the middle of one, and when the store goes away in the middle of a load and comes
back (the recorder spools and replays). Records are counted in the store itself.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tollway.store import Store, open_store
from tollway.store.metering_schema import call_records, rollups

from control_plane import PostgresCluster, backend_params, new_database, postgres_server
from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import Process, free_port, get_json, start_gateway, wait_started

ADMIN_TOKEN = "tollway-test-admin-token-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]


def file_config(mock: Process) -> dict[str, Any]:
    from tollway.config.compile import hash_key

    return {
        "server": {"drain_timeout_s": 15},
        "providers": {
            "mock": {
                "type": "openai_compatible",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            }
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "mock"}]},
            "unhurried": {"deployments": [{"provider": "mock", "model": "gpt-4o~latency_ms=300"}]},
        },
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }


def start(workdir: Path, mock: Process, store: list[str], workers: int = 2) -> Process:
    process = start_gateway(
        workdir,
        file_config(mock),
        *store,
        env={"MOCK_KEY": UPSTREAM_KEY, "TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN},
        workers=workers,
    )
    return wait_started(process)


def store_args(backend: str, workdir: Path) -> list[str]:
    if backend == "sqlite":
        return ["--data-dir", str(workdir / f"records-{free_port()}")]
    return ["--store", new_database(postgres_server())]


def open_records(args: list[str]) -> Store:
    if args[0] == "--data-dir":
        return open_store(data_dir=args[1], apply_migrations=False)
    return open_store(store=args[1], apply_migrations=False)


def counts(store: Store) -> tuple[int, int, int]:
    """(records, distinct request ids, requests in the minute rollups)."""
    with store.read() as session:
        records = session.execute(select(func.count()).select_from(call_records)).scalar_one()
        distinct = session.execute(
            select(func.count(func.distinct(call_records.c.request_id)))
        ).scalar_one()
        rolled = session.execute(select(func.sum(rollups["minute"].c.requests))).scalar_one()
    return int(records), int(distinct), int(rolled or 0)


async def load(
    url: str, ids: range, *, model: str = "gpt-4o-mini", concurrency: int = 16
) -> list[str]:
    """Calls, half of them streamed; returns the request ids that were answered."""
    answered: list[str] = []
    queue = list(ids)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:

        async def worker() -> None:
            while queue:
                n = queue.pop()
                request_id = f"load-{n}"
                body = {"model": model, "messages": MESSAGES, "stream": n % 2 == 0}
                try:
                    async with client.stream(
                        "POST",
                        "/v1/chat/completions",
                        json=body,
                        headers={"x-request-id": request_id},
                    ) as response:
                        await response.aread()
                except httpx.HTTPError:
                    continue  # never answered: the gateway was gone
                answered.append(request_id)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_call_has_one_record_after_a_load_and_sigterm(
    backend: str, workdir: Path, mock: Process
) -> None:
    args = store_args(backend, workdir)
    gateway = start(workdir, mock, args)
    try:
        answered = asyncio.run(load(gateway.url, range(600)))
        assert len(answered) == 600
        # Stopped at once: the last records are still in the workers' sinks and the channel.
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(60) == 0
    finally:
        gateway.stop()
    store = open_records(args)
    try:
        assert counts(store) == (600, 600, 600)
    finally:
        store.close()


def test_sigterm_in_the_middle_of_a_load_loses_and_doubles_nothing(
    backend: str, workdir: Path, mock: Process
) -> None:
    args = store_args(backend, workdir)
    gateway = start(workdir, mock, args)
    answered: list[str] = []

    def run() -> None:
        answered.extend(
            asyncio.run(load(gateway.url, range(2000), model="unhurried", concurrency=32))
        )

    thread = threading.Thread(target=run)
    try:
        thread.start()
        time.sleep(2.0)
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(60) == 0
        thread.join(60)
    finally:
        gateway.stop()
    assert 0 < len(answered) < 2000
    store = open_records(args)
    try:
        records, distinct, rolled = counts(store)
        with store.read() as session:
            stored = set(session.execute(select(call_records.c.request_id)).scalars())
    finally:
        store.close()
    assert records == distinct == rolled
    # Every answer has its record; a record without an answer the client read is a call the
    # gateway finished while the client was being cut off (none expected in a drain).
    assert set(answered) <= stored
    assert records == len(answered), sorted(stored - set(answered))[:5]


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    own = PostgresCluster()
    yield own
    own.stop()


def test_a_store_outage_in_the_middle_of_a_load_loses_nothing(
    workdir: Path, mock: Process, cluster: PostgresCluster
) -> None:
    url = new_database(cluster.url)
    admin_port = free_port()
    gateway = start(workdir, mock, ["--store", url, "--admin-port", str(admin_port)])
    answered: list[str] = []
    stop = threading.Event()

    def run() -> None:
        n = 0
        while not stop.is_set():
            answered.extend(asyncio.run(load(gateway.url, range(n, n + 100), concurrency=8)))
            n += 100

    thread = threading.Thread(target=run)
    try:
        thread.start()
        time.sleep(1.5)
        cluster.pause()
        during = len(answered)
        time.sleep(4.0)
        assert len(answered) > during, "calls are served while the store is down"
        spooled = _metric(admin_port, "tollway_records_spooled_total")
        cluster.resume()
        time.sleep(2.0)
        stop.set()
        thread.join(60)
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(60) == 0
    finally:
        stop.set()
        gateway.stop()
    assert spooled > 0, "the outage made the recorder spool"
    store = open_store(store=url, apply_migrations=False)
    try:
        assert counts(store) == (len(answered),) * 3, gateway.log()[-5000:]
    finally:
        store.close()
    assert "replaying the spool" in gateway.log()


def _metric(admin_port: int, name: str) -> float:
    """A value from the admin port's /metrics (the recorder answers even without a store)."""
    with httpx.Client(timeout=10) as client:
        for _ in range(50):
            try:
                text = client.get(f"http://127.0.0.1:{admin_port}/metrics").text
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            time.sleep(0.1)
    return 0.0


def test_the_admin_port_serves_metrics_without_a_store(workdir: Path, mock: Process) -> None:
    gateway = start_gateway(workdir, file_config(mock), env={"MOCK_KEY": UPSTREAM_KEY}, workers=2)
    try:
        asyncio.run(load(gateway.url, range(20)))
        assert gateway.admin_port is not None
        health = get_json(f"http://127.0.0.1:{gateway.admin_port}/healthz")
        assert health == {"status": "ok"}
        assert "metrics on http://" in gateway.log() and "calls are not recorded" in gateway.log()
    finally:
        gateway.stop()
