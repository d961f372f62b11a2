"""The worker's record sink: batches, the channel, the spool, events, ids."""

from __future__ import annotations

import asyncio
import os
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

from tollway.analytics import spool, wire
from tollway.analytics.sink import RecordSink, channel_pair
from tollway.config.snapshot import AppRef, ClientKey, ServiceRuntime
from tollway.policies.context import RequestContext
from tollway.proxy.http import Request


def call(n: int = 0, **fields: Any) -> RequestContext:
    request = Request(
        "POST",
        "/v1/chat/completions",
        b"",
        [
            (b"authorization", b"Bearer tw-secret-client-key-0123456789"),
            (b"user-agent", b"OpenAI/Python 1.99"),
            (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ],
        b'{"model":"gpt-4o-mini"}',
        "1.1",
        True,
        f"req-{n}".encode(),
        "127.0.0.1",
    )
    ctx = RequestContext(request, None, None)  # type: ignore[arg-type]
    ctx.key = ClientKey.build(
        "payments/bot/prod", None, app=AppRef(7, "payments/bot", 3, "payments"), key_id=11
    )
    ctx.service = ServiceRuntime(5, "ml/chat", 2, "ai", "/chat", version=4)
    ctx.model = "gpt-4o-mini"
    ctx.status = 200
    ctx.outcome = "completed"
    ctx.usage = {"prompt_tokens": 10, "completion_tokens": 5}
    ctx.cost = Decimal("0.000123")
    ctx.finished_at = ctx.started_at + 0.01
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def received(sock: socket.socket) -> list[wire.Message]:
    out = []
    while True:
        try:
            out.append(wire.decode(sock.recv(1 << 22, socket.MSG_DONTWAIT)))
        except BlockingIOError:
            return out


def test_a_batch_goes_over_the_channel_with_unique_ids() -> None:
    send, receive = channel_pair()
    sink = RecordSink(batch_size=3)

    async def run() -> None:
        sink.open(channel=send)
        for n in range(7):
            sink.add(call(n))
        sink.close()

    asyncio.run(run())
    messages = received(receive)
    batches = [m for m in messages if isinstance(m, wire.RecordBatch)]
    records = [r for b in batches for r in b.records]
    assert len(records) == 7
    ids = {b.prefix + format(r[wire.FIELD["seq"]], "x") for b in batches for r in b.records}
    assert len(ids) == 7
    first = records[0]
    assert first[wire.FIELD["request_id"]] == b"req-0"
    assert first[wire.FIELD["team_id"]] == 3 and first[wire.FIELD["app_id"]] == 7
    assert first[wire.FIELD["key_id"]] == 11
    assert first[wire.FIELD["service_version"]] == 4
    assert first[wire.FIELD["cost"]] == "0.000123"
    assert first[wire.FIELD["user_agent"]] == b"OpenAI/Python 1.99"
    assert first[wire.FIELD["traceparent"]].startswith(b"00-0af7")
    # Nothing of the caller's key travels.
    assert b"tw-secret" not in b"".join(wire.encode_records(b) for b in batches)
    assert isinstance(messages[-1], wire.Report) and messages[-1].last
    assert sink.sent == 7 and sink.spooled == 0 and sink.dropped == 0


def test_a_full_channel_spills_to_the_spool_and_nothing_is_lost(tmp_path: Path) -> None:
    send, receive = channel_pair()
    send.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sink = RecordSink(batch_size=50)

    async def run() -> None:
        sink.open(channel=send, spool_dir=tmp_path)
        for n in range(2000):
            sink.add(call(n))
        sink.close()

    asyncio.run(run())
    assert sink.spooled > 0
    over_channel = [m for m in received(receive) if isinstance(m, wire.RecordBatch)]
    files = spool.ready_files(tmp_path)
    assert files and all(f.suffix == ".spool" for f in files)
    spooled = [wire.decode(frame) for f in files for frame in spool.frames(f)]
    ids = [
        b.prefix + format(r[0], "x")
        for b in [*over_channel, *spooled]
        if isinstance(b, wire.RecordBatch)
        for r in b.records
    ]
    assert len(ids) == len(set(ids)) == 2000


def test_without_a_channel_or_spool_records_are_counted_as_dropped() -> None:
    sink = RecordSink(batch_size=2)
    sink.add(call())
    sink.add(call())
    assert sink.dropped == 2


def test_events_carry_plain_values_and_ids() -> None:
    sink = RecordSink()
    seen: list[wire.Message] = []

    async def run() -> None:
        sink.open(local=seen.append)
        first = sink.event("budget.alert", {"spent": Decimal("8.50"), "at": (1, 2)}, team_id=3)
        second = sink.event("budget.alert", {"spent": Decimal("9.00")}, team_id=3)
        assert first != second
        sink.close()

    asyncio.run(run())
    [events] = [m for m in seen if isinstance(m, list)]
    assert [e.payload for e in events] == [{"spent": "8.50", "at": [1, 2]}, {"spent": "9.00"}]
    assert events[0].team_id == 3 and events[0].kind == "budget.alert"
    roundtrip = wire.decode(wire.encode_events(events))
    assert roundtrip == events


def test_a_forked_child_gets_its_own_id_prefix() -> None:
    from tollway.analytics.sink import worker_sink

    parent = worker_sink()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, worker_sink().event("x", {}).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 100).decode()
    assert not child_id.startswith(parent.event("x", {}).split("-")[0])


def test_a_torn_spool_frame_ends_the_file_and_keeps_the_frames_before(tmp_path: Path) -> None:
    writer = spool.SpoolWriter(tmp_path, "w")
    writer.append(b"one")
    writer.append(b"two")
    writer.seal()
    [path] = spool.ready_files(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    assert list(spool.frames(path)) == [b"one"]
