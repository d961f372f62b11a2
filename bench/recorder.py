"""CPU per call record with no sockets: the worker's share of recording, then the recorder's.

Calls go through the real data plane in memory (as bench/inprocess.py does: key_auth, then
the `record` policy; the key belongs to an app and the calls to a service, as the tenancy
policies would have set), and the contexts the record policy got are kept: one call for
each record, request ids as the gateway makes them. Then, timed apart:

- worker: the `record` policy's done phase and its sink (analytics/sink.py), batched every
  `--batch` calls as a worker ships them: each wire record made from its call's context and
  each batch encoded (the datagram's send is the one thing left out: a list keeps it);
- recorder: each datagram as the recorder companion handles it (analytics/recorder.py:
  decoded, observed for the Prometheus metrics, queued), then written by its writer's code
  (analytics/ingest.py, storage.py: rows, the duplicate check, the insert, the rollups) into
  a SQLite store in a temporary directory, migrated as `tollway apply` does and opened as
  the recorder opens it, every `--write-batch` records (the writer's batch at ~5k calls/s:
  what arrives in its 0.2 s flush interval). The writer's thread is left out (it only
  waits); its loop is followed here step by step. Each repeat adds its records to the same
  store, after `--preload` records.

Not seen here: what holding a call's context until its batch is made costs a worker's
garbage collector (every call is held here anyway); bench/inprocess.py --record sees it.

Every record is checked to have landed (rows counted, rollup requests summed) before a
figure is printed. Instructions, repeatable whatever the machine does: under callgrind, at
the same `--records`, `--stage worker` less `--stage calls` (the data plane alone) is the
worker's share, `--stage recorder` less `--stage worker` the recorder's:

    .venv/bin/python bench/recorder.py
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/recorder.py --records 2048 --repeat 1 --stage calls|worker|recorder
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from sqlalchemy import func, select

from tollway.analytics import wire
from tollway.analytics.ingest import Ingest, Pending
from tollway.analytics.recorder import Recorder, RecorderSettings
from tollway.analytics.sink import RecordSink
from tollway.app import build_router
from tollway.config.compile import compile_config
from tollway.config.load import validate_config
from tollway.config.snapshot import AppRef, ClientKey, ServiceRuntime, SnapshotHolder
from tollway.policies.context import RequestContext
from tollway.policies.record import Record
from tollway.proxy.connection import HttpConnection
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.health import Health
from tollway.proxy.server import HttpServer
from tollway.proxy.upstream import UpstreamConnection, Upstreams
from tollway.settings import StoreSettings
from tollway.store.database import open_store
from tollway.store.metering_schema import call_records, rollups

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
# What the tenancy policies (key_auth with the store's keys, subscription) would have set.
APP_KEY = ClientKey.build(
    "bench/loadgen/bench", None, app=AppRef(2, "bench/loadgen", 1, "bench"), key_id=1
)
SERVICE = ServiceRuntime(1, "bench/models", 1, "ai", "/models", version=1)


class Transport:
    """Takes what the gateway writes; the answers are checked, then dropped."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: Any) -> None:
        self.written.extend(parts)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class DataPlane:
    """The gateway's data plane in memory, its record policy handing calls to a list (made
    and used inside the event loop, as a worker's)."""

    def __init__(self) -> None:
        data: dict[str, Any] = {
            "providers": {"up": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": {"gpt-4o-mini": {"deployments": [{"provider": "up"}]}},
            "keys": [{"name": "bench", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
        }
        runtime = compile_config(validate_config(data), {}, records=True)
        self.done: list[RequestContext] = []
        [record] = [p for p in runtime.pipeline.policies if isinstance(p, Record)]
        # The done phase hands each call to this list instead of the worker's sink.
        record.add = self.done.append
        deadlines = Deadlines()
        upstreams = Upstreams(deadlines)
        router = build_router(SnapshotHolder(runtime), upstreams, Health())
        self.client = HttpConnection(HttpServer(router.dispatch, runtime.limits, deadlines))
        self.client_transport = Transport()
        self.client.connection_made(self.client_transport)  # type: ignore[arg-type]
        pool = upstreams.pool(runtime.models["gpt-4o-mini"].deployments[0].provider)
        self.upstream = UpstreamConnection(pool)
        self.upstream.connection_made(Transport())  # type: ignore[arg-type]
        pool.idle.append(self.upstream)

    async def calls(self, count: int) -> list[RequestContext]:
        """`count` calls, their contexts as the record policy got them."""
        client, upstream = self.client, self.upstream
        for _ in range(count):
            client.data_received(REQUEST)
            upstream.data_received(ANSWER)
        calls, self.done[:] = self.done[:], []
        assert len(calls) == count, f"{len(calls)} calls recorded of {count}"
        assert self.client_transport.written[-1].endswith(ANSWER_BODY)
        self.client_transport.written.clear()
        for ctx in calls:
            assert ctx.status == 200 and ctx.usage is not None and ctx.cost is not None
            ctx.key = APP_KEY
            ctx.service = SERVICE
        return calls


async def _data_plane() -> DataPlane:
    return DataPlane()


class Channel:
    """Stands in for the worker's end of the recorder's channel: keeps each datagram."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes, flags: int = 0) -> int:
        self.sent.append(data)
        return len(data)


async def worker_side(calls: list[RequestContext], batch: int) -> tuple[float, list[bytes]]:
    """CPU seconds of the record policy's work for the calls, and the datagrams it sent."""
    channel = Channel()
    sink = RecordSink(batch_size=batch)
    sink.open(channel=channel)  # type: ignore[arg-type]
    add = sink.add  # what the record policy's done phase calls
    started = time.process_time()
    for ctx in calls:
        add(ctx)
    sink.flush()
    spent = time.process_time() - started
    sink.close()
    assert sink.sent == len(calls), f"{sink.sent} records sent of {len(calls)}"
    return spent, [m for m in channel.sent if m.startswith(wire.RECORDS)]


class Store:
    """The recorder's intake and writer on one SQLite store, as the recorder companion has
    them; `take` hands it datagrams."""

    def __init__(self, directory: Path, write_batch: int) -> None:
        open_store(data_dir=directory).engine.dispose()  # migrated, as `tollway apply` does
        settings = RecorderSettings(store=StoreSettings(directory, None), spool_dir=None)
        self.recorder = Recorder(settings, None, None)  # type: ignore[arg-type]
        self.ingest = self.recorder.ingest = Ingest(
            self.recorder._open_store,
            self.recorder.metrics,
            self.recorder.spool,
            max_batch=write_batch,
        )
        # Opened as the recorder's writer opens it, before anything is timed.
        assert self.ingest._ready(force=True) and self.ingest.store is not None
        self.write_batch = write_batch

    def take(self, messages: list[bytes]) -> float:
        """CPU seconds for the recorder to take and store `messages`."""
        recorder, ingest, write_batch = self.recorder, self.ingest, self.write_batch
        pending = Pending()
        started = time.process_time()
        for message in messages:
            # The recorder's intake (Recorder._receive), then its writer's loop (Ingest._run).
            recorder._handle(wire.decode(message))
            while pending.records < write_batch and not ingest.queue.empty():
                ingest._take(pending, ingest.queue.get_nowait())
            if pending.records >= write_batch:
                ingest._flush(pending)
                pending = Pending()
        if pending:
            ingest._flush(pending)
        return time.process_time() - started

    def landed(self) -> tuple[int, int, int]:
        """Records stored, calls the minute rollups count, records the recorder counted."""
        assert self.ingest.store is not None
        with self.ingest.store.read() as session:
            stored = session.execute(select(func.count()).select_from(call_records)).scalar()
            minute = rollups["minute"]
            counted = session.execute(select(func.sum(minute.c.requests))).scalar()
        metrics = self.recorder.metrics.recorder
        return int(stored or 0), int(counted or 0), int(metrics["tollway_records_stored_total"])

    def close(self) -> None:
        assert self.ingest.store is not None
        self.ingest.store.engine.dispose()


def run(
    args: argparse.Namespace, loop: asyncio.AbstractEventLoop, store: Store
) -> tuple[list[float], list[float]]:
    """CPU us a record of each run: the worker's, the recorder's."""
    plane = loop.run_until_complete(_data_plane())
    worker: list[float] = []
    runs: list[list[bytes]] = []
    # Every run's datagrams first, each of its own calls: the recorder holds no calls.
    for count in [args.preload] * bool(args.preload) + [args.records] * args.repeat:
        calls = loop.run_until_complete(plane.calls(count))
        if args.stage != "calls":
            spent, messages = loop.run_until_complete(worker_side(calls, args.batch))
            worker.append(spent / count * 1e6)
            runs.append(messages)
        del calls
    if args.preload and worker:
        del worker[0]
    # The calls' garbage gone before the recorder's runs, at every stage (under callgrind).
    gc.collect()
    recorder: list[float] = []
    if args.stage == "recorder":
        if args.preload:
            store.take(runs.pop(0))
        expected = args.preload
        for messages in runs:
            recorder.append(store.take(messages) / args.records * 1e6)
            expected += args.records
            landed = store.landed()
            assert landed == (expected,) * 3, f"of {expected}: stored, counted {landed}"
    return worker, recorder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20480)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256, help="records a datagram (a worker's)")
    parser.add_argument(
        "--write-batch", type=int, default=1024, help="records a store transaction (the writer's)"
    )
    parser.add_argument("--preload", type=int, default=0, help="records stored before the runs")
    parser.add_argument(
        "--stage",
        choices=("calls", "worker", "recorder"),
        default="recorder",
        help="how far to go: the calls only, their records made and encoded, then stored",
    )
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory(prefix="tollway-recorder-bench-") as directory:
        # Opened whatever the stage: under callgrind, the stages then differ by their
        # per-record work only.
        store = Store(Path(directory), args.write_batch)
        worker, recorder = run(args, loop, store)
        store.close()
    if args.stage == "calls":
        print(f"calls: {args.records} x {args.repeat} through the data plane")
    for name, figures in (("worker", worker), ("recorder", recorder)):
        if figures:
            print(
                f"{name}: {args.records} records x {args.repeat}: median "
                f"{statistics.median(figures):.2f} us CPU a record "
                f"(min {min(figures):.2f}, max {max(figures):.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
