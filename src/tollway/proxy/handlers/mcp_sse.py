"""The older HTTP+SSE transport of MCP, for clients that still use it (proxy/handlers/mcp.py).

A client opens `GET /mcp` (or a service's endpoint) as an event stream; its first event,
`endpoint`, names where it posts its messages: the same path with `?session_id=...`. Each
message posted there is answered 202, and its answer comes as a `message` event on the
stream. The messages themselves are answered as the stateless endpoint answers them.

The stream is held by one worker, the post may reach any: the session id names the worker
(its pid), and a worker that gets another's session's message hands the answer over a
Unix socket of that worker's (in the abstract namespace, so it needs no file and goes with
the process). Only the key that opened the stream may post to it. Across nodes, a load
balancer must keep a client's requests on one node (Streamable HTTP needs no such thing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson

from tollway.proxy.handlers.calls import HeldAnswer
from tollway.proxy.http import ClientGone
from tollway.proxy.replies import finish

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext
    from tollway.proxy.connection import HttpConnection

log = logging.getLogger("tollway.proxy")

# A comment on an idle stream this often keeps proxies from closing it, and finds a client
# that left.
KEEPALIVE_S = 15.0
# Streams one worker holds at most (each holds a connection and a queue).
MAX_SESSIONS = 1000
# Answers a stream holds for a client that does not read them: more are refused (503).
QUEUE_SIZE = 256
# A handed-over answer's largest size (a tool result is cut at 1 MiB).
MAX_FRAME_BYTES = 4 * 1024 * 1024
_HANDOVER_TIMEOUT_S = 5.0

# The stateless endpoint, answering one message into a held answer.
Answerer = Callable[["RequestContext", HeldAnswer], Awaitable[None] | None]


@dataclass(slots=True)
class _Session:
    key: str
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class LegacySessions:
    """This worker's HTTP+SSE sessions, and its end of the hand-over between workers."""

    __slots__ = ("_inbox", "_sessions")

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._inbox: asyncio.AbstractServer | None = None

    # -- GET: the stream ----------------------------------------------------------------------

    async def open(self, ctx: RequestContext, conn: HttpConnection) -> None:
        if len(self._sessions) >= MAX_SESSIONS:
            ctx.status, ctx.outcome = 503, "refused"
            conn.send_error(503, "Too many MCP event streams on this worker.", code="overloaded")
            finish(ctx)
            return
        await self._listen()
        session_id = f"{os.getpid():x}.{secrets.token_urlsafe(24)}"
        session = self._sessions[session_id] = _Session(_key_of(ctx))
        ctx.status, ctx.stream = 200, True
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        try:
            conn.start_stream(200, headers, on_interrupt=lambda _: b": closing\n\n")
            where = f"{ctx.request.path}?session_id={session_id}"
            conn.write_chunk(b"event: endpoint\ndata: %s\n\n" % where.encode())
            while True:
                try:
                    data = await asyncio.wait_for(session.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    conn.write_chunk(b": keep-alive\n\n")
                else:
                    conn.write_chunk(b"event: message\ndata: %s\n\n" % data)
                await conn.drain()
        except (ClientGone, asyncio.CancelledError):
            ctx.outcome = "completed"
            raise
        finally:
            del self._sessions[session_id]
            finish(ctx, "completed")

    # -- POST ?session_id=: a message of a session ---------------------------------------------

    async def post(
        self, ctx: RequestContext, conn: HttpConnection, session_id: str, answer: Answerer
    ) -> None:
        """Answer the message as the stateless endpoint would, the answer going to the
        session's stream: 202 here, or the session's absence (404) or another key's (403)."""
        owner = _owner(session_id)
        if owner is None:
            _refuse(ctx, conn, 404, "Unknown MCP session.")
            return
        key = _key_of(ctx)
        local = self._sessions.get(session_id) if owner == os.getpid() else None
        if owner == os.getpid() and (local is None or local.key != key):
            _refuse(ctx, conn, *_REFUSALS["gone" if local is None else "forbidden"])
            return
        held = HeldAnswer()
        work = answer(ctx, held)
        if work is not None:
            await work
        status, _, body = held.sent if held.sent is not None else (500, [], b"")
        if status not in (200, 202):
            # Not a message the endpoint could answer (malformed): said here, as it was sent.
            conn.send_json(status, body)
            return
        if status == 200:
            delivered = (
                _deliver(local, key, body)
                if local is not None
                else await _hand_over(owner, session_id, key, body)
            )
            if delivered != "ok":
                _refuse(ctx, conn, *_REFUSALS[delivered])
                return
        conn.send(202, [])

    # -- the hand-over between workers -------------------------------------------------------

    async def _listen(self) -> None:
        if self._inbox is None:
            # The socket made here: uvloop takes no abstract address by name.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(_address(os.getpid()))
            sock.listen(64)
            sock.setblocking(False)
            self._inbox = await asyncio.start_unix_server(self._received, sock=sock)

    async def _received(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One answer from another worker: `session key length\\n` then the answer."""
        try:
            head = (await asyncio.wait_for(reader.readline(), _HANDOVER_TIMEOUT_S)).split()
            session_id, key, size = head[0].decode(), head[1].decode(), int(head[2])
            if size > MAX_FRAME_BYTES:
                raise ValueError("too large")
            body = await asyncio.wait_for(reader.readexactly(size), _HANDOVER_TIMEOUT_S)
            said = _deliver(self._sessions.get(session_id), key, body)
            writer.write(said.encode() + b"\n")
            await writer.drain()
        except (ValueError, IndexError, OSError, TimeoutError, asyncio.IncompleteReadError):
            log.warning("a malformed MCP hand-over between workers was dropped")
        finally:
            writer.close()

    async def close(self) -> None:
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None


async def _hand_over(owner: int, session_id: str, key: str, body: bytes) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        connect = asyncio.get_running_loop().sock_connect(sock, _address(owner))
        await asyncio.wait_for(connect, _HANDOVER_TIMEOUT_S)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
    except (OSError, TimeoutError):
        sock.close()
        return "gone"  # the worker that held it is gone, and the stream with it
    try:
        writer.write(b"%s %s %d\n%s" % (session_id.encode(), key.encode(), len(body), body))
        await writer.drain()
        said = (await asyncio.wait_for(reader.readline(), _HANDOVER_TIMEOUT_S)).strip().decode()
        return said if said in _REFUSALS or said == "ok" else "gone"
    except (OSError, TimeoutError):
        return "gone"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def session_of(query: bytes) -> str | None:
    """The `session_id` a message is posted for, if any."""
    if b"session_id=" not in query:
        return None
    found = parse_qs(query.decode("latin-1")).get("session_id")
    return found[0] if found else None


def _owner(session_id: str) -> int | None:
    pid, _, secret = session_id.partition(".")
    try:
        return int(pid, 16) if secret else None
    except ValueError:
        return None


def _address(pid: int) -> str:
    # Abstract namespace (Linux): no file to create or remove, gone with the process.
    return f"\0tollway-mcp-sse-{pid}"


def _key_of(ctx: RequestContext) -> str:
    """Which key a request carries, as a token fit for the hand-over's head."""
    key = ctx.key
    return hashlib.sha256(key.name.encode()).hexdigest()[:32] if key is not None else "-"


def _refuse(ctx: RequestContext, conn: HttpConnection, status: int, message: str) -> None:
    ctx.status, ctx.outcome = status, "refused"
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    conn.send_json(status, orjson.dumps(error))
    finish(ctx)


def _deliver(session: _Session | None, key: str, body: bytes) -> str:
    """Put an answer on a session's stream: ok, gone, forbidden (another key's) or full."""
    if session is None:
        return "gone"
    if session.key != key:
        return "forbidden"
    try:
        session.queue.put_nowait(body)
    except asyncio.QueueFull:
        return "full"
    return "ok"


_REFUSALS = {
    "gone": (404, "Unknown MCP session: open the event stream again."),
    "forbidden": (403, "This MCP session belongs to another key."),
    "full": (503, "The session's stream holds too many unread answers."),
}
