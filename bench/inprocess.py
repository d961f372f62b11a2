"""CPU per proxied request with no sockets: the gateway's own code, and only it.

One client connection and one pooled upstream connection with in-memory transports: each
request is fed to the client side as bytes, the gateway writes its upstream request to the
upstream transport, the upstream's answer is fed back as bytes, and the gateway writes the
answer to the client transport. Everything the data plane does per request runs (parsing,
routing, key auth, the body intake, the upstream head, the exchange, the answer), and nothing
else: no kernel, no event-loop polling, no load generator competing for the core.

So it is stable where a throughput run on a shared machine is not, and it counts under
`valgrind --tool=callgrind` (instructions, repeatable whatever else the machine does):

    .venv/bin/python bench/inprocess.py --requests 20000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/inprocess.py --requests 2000 --repeat 1

It complements, never replaces, ../shared/bench/same-run and bench/run.py: those measure the
whole proxy with its sockets against nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import time
from typing import Any

import pure_modules  # noqa: F401  (installs its finder before any of tollway's modules load)
import uvloop

from tollway.app import build_router
from tollway.config.compile import compile_config
from tollway.config.load import validate_config

try:
    from tollway.config.snapshot import SnapshotHolder
except ImportError:  # an earlier revision, for A/B runs (bench/ab.py)
    from tollway.proxy.handlers.llm import SnapshotHolder  # type: ignore[no-redef]
from tollway.proxy.connection import HttpConnection
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.health import Health
from tollway.proxy.server import HttpServer
from tollway.proxy.upstream import UpstreamConnection, Upstreams

KEY = "sk-bench"
BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful '
    b'assistant."},{"role":"user","content":"Write one short sentence about the sea."}],'
    b'"max_tokens":64,"temperature":0.2}'
)
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/json\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
    b"User-Agent: OpenAI/Python 1.99.0\r\nAccept: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
ANSWER_BODY = (
    b'{"id":"chatcmpl-anchor0001","object":"chat.completion","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":'
    b'"Hello! This is a fixed mock completion used for gateway benchmarks."},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":14,'
    b'"total_tokens":35}}'
)
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(ANSWER_BODY),
    ANSWER_BODY,
)


class Transport:
    """Collects writes; the benchmark checks them and throws them away."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: Any) -> None:
        self.written.extend(parts)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


# `--limits`: every limit on the bench key (none refuses), and a budget.
LIMITS = {
    "rate_limits": {
        "rules": [
            {
                "scope": "key",
                "requests_per_minute": 10**9,
                "tokens_per_minute": 10**12,
                "concurrent": 10**6,
            },
            {"scope": "model", "requests_per_minute": 10**9},
        ]
    },
    "budgets": {"rules": [{"scope": "key", "amount_usd": "1000000000"}]},
}


def _full_pipeline() -> Any:
    """bench/full-pipeline.yaml as `tollway serve --config ... --data-dir ...` compiles it for
    a worker: applied to a fresh SQLite store, with the node's counters and the record."""
    import subprocess
    import tempfile
    from pathlib import Path

    from tollway.analytics.sink import worker_sink
    from tollway.limits.boot import NodeCounters
    from tollway.node import NodeConfig
    from tollway.settings import ServeSettings, gateway_config, settings_store
    from tollway.store.database import open_store

    here = Path(__file__).resolve().parent
    data_dir = tempfile.mkdtemp(prefix="tollway-inprocess-")
    os.environ.update(TOLLWAY_BENCH_UPSTREAM="http://127.0.0.1:9/v1", TOLLWAY_BENCH_KEY=KEY)
    environ = dict(os.environ)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tollway",
            "apply",
            "--data-dir",
            data_dir,
            str(here / "full-pipeline.yaml"),
        ],
        env=environ,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    settings = ServeSettings(
        config_path=str(here / "full-pipeline.yaml"), data_dir=data_dir, environ=environ
    )
    at = settings_store(settings)
    assert at is not None
    store = open_store(data_dir=at.data_dir, store=at.store_url, secret_key=at.secret_key)
    node = NodeConfig(settings, gateway_config(settings), store, store.load_state())
    node.counters = NodeCounters(1, None).for_this_process()
    node.records = True
    node.events = worker_sink()
    return node.current()


def _config(key: bool, limits: bool = False, record: bool = False) -> Any:
    data: dict[str, Any] = {
        "providers": {"up": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"*": {"deployments": [{"provider": "up"}]}},
    }
    if key:
        data["keys"] = [{"name": "bench", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}]
    if limits:
        data.update(LIMITS)
    return compile_config(validate_config(data), {}, records=record)


async def run(
    requests: int, key: bool, limits: bool = False, record: bool = False, full: bool = False
) -> float:
    """Seconds of CPU time for `requests` proxied calls."""
    runtime = _full_pipeline() if full else _config(key, limits, record)
    record = record or full
    shipped = 0
    if record:
        from tollway.analytics.sink import worker_sink

        # Records made and encoded as for the recorder (every 256 calls), then dropped: the
        # worker's whole share of recording but the socket write.
        worker_sink().open(local=lambda message: None)
        shipped = worker_sink().sent
    deadlines = Deadlines()
    upstreams = Upstreams(deadlines)
    router = build_router(SnapshotHolder(runtime), upstreams, Health())
    server = HttpServer(router.dispatch, runtime.limits, deadlines)
    client = HttpConnection(server)
    client_transport = Transport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    deployment = (runtime.wildcard or runtime.models["gpt-4o-mini"]).deployments[0]
    pool = upstreams.pool(deployment.provider)
    upstream = UpstreamConnection(pool)
    upstream_transport = Transport()
    upstream.connection_made(upstream_transport)  # type: ignore[arg-type]
    pool.idle.append(upstream)
    started = time.process_time()
    for _ in range(requests):
        client.data_received(REQUEST)
        upstream.data_received(ANSWER)
    spent = time.process_time() - started
    if record:
        from tollway.analytics.sink import worker_sink

        assert worker_sink().sent - shipped + len(worker_sink().pending) <= requests
        worker_sink().close()
    assert len(upstream_transport.written) >= requests, "the upstream saw every request"
    last = client_transport.written[-1]
    assert last.startswith(b"HTTP/1.1 200 OK\r\n") and last.endswith(ANSWER_BODY), last[:200]
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-key", action="store_true", help="without key_auth")
    parser.add_argument(
        "--limits",
        action="store_true",
        help="with rate_limit (requests, tokens and concurrency per key, requests per model) "
        "and budget (per key), counted in the node's shared-memory table",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="with the record policy (each call recorded, batched and encoded by the sink)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="bench/full-pipeline.yaml on a fresh SQLite store, as tollway serve runs it "
        "(key auth, subscription, rate limits per app and team, budget, cost, the record)",
    )
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    runs = [
        loop.run_until_complete(
            run(args.requests, not args.no_key, args.limits, args.record, args.full)
        )
        for _ in range(args.repeat)
    ]
    per_request = [seconds / args.requests * 1e6 for seconds in runs]
    print(
        f"{args.requests} requests x {args.repeat}: median {statistics.median(per_request):.2f} "
        f"us CPU a request (min {min(per_request):.2f}, max {max(per_request):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
