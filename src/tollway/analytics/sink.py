"""A worker's sink for call records and events: batched, shipped off the hot path.

The `record` policy's done phase hands the finished call's context to `RecordSink.add`: one
list append. Every `interval_s` (100 ms), or as soon as `batch_size` calls are waiting, the
sink turns them into wire records (analytics/wire.py) and sends them, as one datagram, to the
recorder companion over the channel the supervisor made before forking. It never waits: a
send that would block (the recorder is behind, or restarting) goes to this worker's spool
file instead, which the recorder replays. With one worker and no store (no recorder), a local
consumer (the worker's own metrics) takes the batches instead.

Other policies report events through `event(kind, payload)` (budget alerts, say): they are
stored in the events table and sent to the webhooks that take their kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tollway.analytics import wire
from tollway.analytics.redaction import Redactor
from tollway.analytics.spool import SpoolWriter

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext

log = logging.getLogger("tollway.analytics")

# A datagram larger than this is split (records) or spooled (a single huge record).
MAX_MESSAGE = 1 << 20
# The channel's socket buffer (the kernel caps it at net.core.wmem_max).
CHANNEL_BUFFER = 8 << 20
# Errors that mean "the channel cannot take this now": the message goes to the spool.
_FULL = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EMSGSIZE)

LocalConsumer = Callable[[wire.Message], None]


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """The channel between the workers (first socket, shared by all of them) and the recorder
    (second): message boundaries kept, no message ever interleaved with another."""
    send, receive = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (send, receive):
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, CHANNEL_BUFFER)
    return send, receive


class RecordSink:
    __slots__ = (
        "_channel",
        "_deployments",
        "_events",
        "_handle",
        "_in_flight",
        "_local",
        "_loop",
        "_prefix",
        "_seq",
        "_spool",
        "_ticks",
        "batch_size",
        "dropped",
        "interval_s",
        "pending",
        "redactor",
        "sent",
        "spooled",
    )

    def __init__(self, *, batch_size: int = 256, interval_s: float = 0.1) -> None:
        self.batch_size = batch_size
        self.interval_s = interval_s
        # Finished calls waiting for the next flush (the done phase appends here).
        self.pending: list[RequestContext] = []
        self._events: list[wire.Event] = []
        self._channel: socket.socket | None = None
        self._spool: SpoolWriter | None = None
        self._local: LocalConsumer | None = None
        self._in_flight: Callable[[], int] | None = None
        self._deployments: Callable[[], Sequence[wire.DeploymentRow]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._ticks = 0
        self.redactor = Redactor()
        # Records shipped over the channel or to a local consumer, spooled, and dropped
        # (no channel, no spool: the sink is not open, or the disk refused a spool write).
        self.sent = self.spooled = self.dropped = 0
        self._prefix = ""
        self._seq = 0
        self._renew()

    def _renew(self) -> None:
        """A fresh id prefix: each process has its own, so record ids never repeat."""
        self._prefix = os.urandom(6).hex() + "-"
        self._seq = 0

    # -- set-up, in the worker ---------------------------------------------------------------

    def open(
        self,
        *,
        channel: socket.socket | None = None,
        spool_dir: Path | None = None,
        local: LocalConsumer | None = None,
        in_flight: Callable[[], int] | None = None,
        deployments: Callable[[], Sequence[wire.DeploymentRow]] | None = None,
    ) -> None:
        """Start shipping (from inside the worker's event loop): to the recorder over
        `channel` (spilling to `spool_dir`), or to a `local` consumer."""
        self._channel = channel
        self._spool = SpoolWriter(spool_dir, "w") if spool_dir is not None else None
        self._local = local
        self._in_flight = in_flight
        self._deployments = deployments
        self._loop = asyncio.get_running_loop()
        self._ticks = 0
        self._handle = self._loop.call_later(self.interval_s, self._tick)

    @property
    def is_open(self) -> bool:
        return self._loop is not None

    def close(self) -> None:
        """The worker is exiting (after its drain): ship everything, say goodbye."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.flush()
        self._report(last=True)
        if self._spool is not None:
            try:
                self._spool.seal()
            except OSError as exc:
                log.error("cannot close the record spool file: %s", exc)
        self._loop = None
        self._channel = None
        self._local = None

    def forget(self) -> None:
        """In a forked child: nothing inherited from the parent is this process's."""
        self.pending = []
        self._events = []
        self._channel = None
        self._spool = None
        self._local = None
        self._in_flight = None
        self._deployments = None
        self._loop = None
        self._handle = None
        self.sent = self.spooled = self.dropped = 0
        self._renew()

    # -- the hot path ------------------------------------------------------------------------

    def add(self, ctx: RequestContext) -> None:
        """A finished call, for the record: kept by reference until the next flush."""
        pending = self.pending
        pending.append(ctx)
        if len(pending) >= self.batch_size:
            self.flush()

    def event(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        team_id: int = 0,
        app_id: int = 0,
        key_id: int = 0,
        event_id: str | None = None,
    ) -> str:
        """Record an event (e.g. kind "budget.alert"); returns its id. The payload is made of
        JSON values (Decimal amounts are written as strings). Shipped with the next flush.
        An `event_id` of the caller's (the same for the same happening, on every worker and
        node) makes it stored once."""
        plain = orjson.loads(orjson.dumps(dict(payload), default=_json_default))
        self._seq += 1
        event_id = event_id or f"{self._prefix}{self._seq:x}"
        self._events.append(wire.Event(event_id, time.time(), kind, plain, team_id, app_id, key_id))
        if self._loop is None:
            # Not serving (a tool, a test): nothing will flush it later.
            self.flush()
        return event_id

    # -- shipping ----------------------------------------------------------------------------

    def _tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            self.flush()
            self._ticks += 1
            if self._ticks % 10 == 0:
                self._report()
                if self._spool is not None:
                    self._spool.seal_if_old()
        except Exception:
            log.exception("the record sink failed to flush")
        self._handle = loop.call_later(self.interval_s, self._tick)

    def flush(self) -> None:
        """Ship the waiting records and events now."""
        pending = self.pending
        if pending:
            batch = pending[:]
            pending.clear()
            self._ship_records(self._encode(batch))
        if self._events:
            events, self._events = self._events, []
            self._ship(wire.encode_events(events), events, len(events))

    def _encode(self, batch: list[RequestContext]) -> list[wire.WireRecord]:
        seq = self._seq
        redactor = self.redactor
        try:
            records = [wire.from_context(ctx, n, redactor) for n, ctx in enumerate(batch, seq + 1)]
        except Exception:
            # One call's context that cannot be read must not cost the others their record.
            log.exception("a call could not be recorded")
            records = []
            for n, ctx in enumerate(batch, seq + 1):
                try:
                    records.append(wire.from_context(ctx, n, redactor))
                except Exception:
                    self.dropped += 1
        self._seq = seq + len(batch)
        return records

    def _ship_records(self, records: list[wire.WireRecord]) -> None:
        if not records:
            return
        batch = wire.RecordBatch(self._prefix, time.time() - time.monotonic(), records, os.getpid())
        message = wire.encode_records(batch)
        if len(message) > MAX_MESSAGE and len(records) > 1:
            half = len(records) // 2
            self._ship_records(records[:half])
            self._ship_records(records[half:])
            return
        self._ship(message, batch, len(records))

    def _ship(self, message: bytes, decoded: wire.Message, count: int) -> None:
        if self._local is not None:
            try:
                self._local(decoded)
            except Exception:
                log.exception("the local record consumer failed")
            self.sent += count
            return
        channel = self._channel
        if channel is not None:
            try:
                channel.send(message, socket.MSG_DONTWAIT)
            except OSError as exc:
                if exc.errno not in _FULL and not isinstance(exc, BlockingIOError):
                    log.error("the record channel failed (%s); spooling", exc)
            else:
                self.sent += count
                if self._spool is not None and self._spool.open:
                    # The channel takes messages again: the recorder may replay the file.
                    self._spool_seal()
                return
        self._to_spool(message, count)

    def _to_spool(self, message: bytes, count: int) -> None:
        if self._spool is None:
            self.dropped += count
            return
        try:
            self._spool.append(message)
        except OSError as exc:
            log.error("cannot spool %d records: %s", count, exc)
            self.dropped += count
            return
        self.spooled += count

    def _spool_seal(self) -> None:
        assert self._spool is not None
        try:
            self._spool.seal()
        except OSError as exc:
            log.error("cannot close the record spool file: %s", exc)

    def _report(self, *, last: bool = False) -> None:
        if self._channel is None and self._local is None:
            return
        in_flight = 0
        deployments: tuple[wire.DeploymentRow, ...] = ()
        if not last:
            if self._in_flight is not None:
                in_flight = self._in_flight()
            if self._deployments is not None:
                deployments = tuple(self._deployments())
        report = wire.Report(os.getpid(), in_flight, time.time(), last, deployments)
        if self._local is not None:
            self._local(report)
            return
        assert self._channel is not None
        # A report is only a gauge: when the channel is full, the next one replaces it.
        with contextlib.suppress(OSError):
            self._channel.send(wire.encode_report(report), socket.MSG_DONTWAIT)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_SINK = RecordSink()
os.register_at_fork(after_in_child=_SINK.forget)


def worker_sink() -> RecordSink:
    """This process's sink (the `record` policy's, and every policy's `event`)."""
    return _SINK


def event(
    kind: str,
    payload: Mapping[str, Any],
    *,
    team_id: int = 0,
    app_id: int = 0,
    key_id: int = 0,
    event_id: str | None = None,
) -> str:
    """Record an event from any policy: `tollway.analytics.sink.event("budget.alert", {...},
    team_id=...)`. Stored in the events table, and sent to the webhooks that take its kind."""
    return _SINK.event(
        kind, payload, team_id=team_id, app_id=app_id, key_id=key_id, event_id=event_id
    )
