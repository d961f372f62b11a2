"""A request body handed to its handler as it arrives: backpressure on the connection, the
end, failures, abandoning it, and sending its first bytes again for a retry."""

from __future__ import annotations

import asyncio

import pytest

from tollway.proxy.http import ClientGone, RefuseRequest
from tollway.proxy.request_body import (
    HIGH_WATER,
    REPLAY_LIMIT,
    BodyError,
    RequestBody,
    WholeBody,
)


class Reader:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_body(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_body(self) -> None:
        self.paused = False


async def test_chunks_backpressure_and_the_end() -> None:
    reader = Reader()
    body = RequestBody(reader, None, None)
    body.feed(b"a" * (HIGH_WATER - 1))
    assert not reader.paused
    body.feed(b"b")
    assert reader.paused
    data = await body.next()
    assert data is not None and len(data) == HIGH_WATER and not reader.paused
    waiting = asyncio.ensure_future(body.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    body.feed(b"c")
    assert await waiting == b"c"
    body.finish()
    assert body.complete and await body.next() is None


async def test_a_limit_refuses_past_it() -> None:
    body = RequestBody(Reader(), None, 10)
    body.feed(b"x" * 10)
    with pytest.raises(RefuseRequest) as refused:
        body.feed(b"y")
    assert refused.value.status == 413


async def test_a_failure_comes_after_what_arrived() -> None:
    body = RequestBody(Reader(), None, None)
    body.feed(b"first")
    body.fail(BodyError(408, "Timed out reading the request body."))
    assert await body.next() == b"first"
    with pytest.raises(BodyError) as failed:
        await body.next()
    assert failed.value.status == 408


async def test_abandoned_bodies_drop_what_comes_and_read_again() -> None:
    reader = Reader()
    body = RequestBody(reader, None, None)
    body.feed(b"z" * HIGH_WATER)
    assert reader.paused
    body.abandon()
    assert not reader.paused
    body.feed(b"more")
    with pytest.raises(ClientGone):
        await body.next()


async def test_rewind_replays_what_was_given_while_it_fits() -> None:
    body = RequestBody(Reader(), None, None)
    body.feed(b"one")
    assert await body.next() == b"one"
    body.feed(b"two")
    assert await body.next() == b"two"
    assert body.rewind()
    body.feed(b"three")
    body.finish()
    assert [await body.next() for _ in range(4)] == [b"one", b"two", b"three", None]
    assert body.rewind()
    assert await body.next() == b"one"

    big = RequestBody(Reader(), None, None)
    big.feed(b"x" * (REPLAY_LIMIT + 1))
    await big.next()
    assert not big.rewind()


async def test_a_whole_body() -> None:
    body = WholeBody(b"data")
    assert body.length == 4
    assert [await body.next(), await body.next()] == [b"data", None]
    assert body.rewind() and await body.next() == b"data"
