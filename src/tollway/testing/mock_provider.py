"""`tollway mock-provider`: a fake OpenAI-format upstream for tests, demos and load tests.

It runs on Tollway's own HTTP server layer, so it is fast enough to load-test a gateway
against. Behaviour per request comes from a `FaultSpec` (see mock_faults): latency, stream
shape, and faults (error statuses, connection resets, mid-stream cuts).

Inspection endpoints, for tests: `GET /_mock/stats` (requests, and each recent stream's state
and bytes sent), `GET /_mock/requests` (the last requests' paths, headers and bodies),
`POST /_mock/reset`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import signal
import socket
import ssl
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson

from tollway.proxy.deadlines import Deadlines
from tollway.proxy.http import ClientGone, HttpLimits, Request
from tollway.proxy.server import HttpConnection, HttpServer
from tollway.testing import mock_anthropic as anthropic_wire
from tollway.testing import mock_bedrock as bedrock_wire
from tollway.testing import mock_cohere as cohere_wire
from tollway.testing import mock_gemini as gemini_wire
from tollway.testing import mock_openai as wire
from tollway.testing import mock_responses as responses_wire
from tollway.testing.mock_faults import FaultSpec, FaultSpecError, split_model
from tollway.testing.mock_reply import Ask, plan

log = logging.getLogger("tollway.mock")

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o4-mini", "text-embedding-3-small")


class StreamRecord:
    __slots__ = ("bytes_sent", "chunks_sent", "id", "state")

    def __init__(self, sid: str) -> None:
        self.id = sid
        self.state = "active"
        self.bytes_sent = 0
        self.chunks_sent = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "bytes_sent": self.bytes_sent,
            "chunks_sent": self.chunks_sent,
        }


class MockProvider:
    def __init__(self, defaults: FaultSpec, api_key: str | None = None, name: str = "mock") -> None:
        self.defaults = defaults
        self.api_key = api_key.encode() if api_key else None
        self.name = name
        self.ids = itertools.count(1)
        self.requests_seen = 0
        # Delayed answers whose caller hung up before they were sent.
        self.abandoned = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.streams: OrderedDict[str, StreamRecord] = OrderedDict()
        self.random = random.Random(0)

    # -- routing ------------------------------------------------------------------------------

    def dispatch(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        path = request.path.removeprefix("/v1")
        if path.startswith("/_mock/"):
            return self._inspect(path, request, conn)
        if path == "/healthz":
            conn.send_json(200, b'{"status":"ok"}')
            return None
        self.requests_seen += 1
        self.recent.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": {k.decode(): v.decode("latin-1") for k, v in request.headers},
            }
        )
        anthropic = path.startswith("/messages")
        cohere = request.path.startswith("/v2/")
        bedrock = bedrock_wire.split_path(request.path)
        gemini = gemini_wire.split_path(request.path)
        error = (
            anthropic_wire.error
            if anthropic
            else gemini_wire.error
            if gemini
            else cohere_wire.error
            if cohere
            else bedrock_wire.error
            if bedrock
            else wire.error
        )
        deployment = None
        if path.startswith("/openai/deployments/"):
            # Azure OpenAI: /openai/deployments/{deployment}/chat/completions?api-version=...
            name, _, rest = path[len("/openai/deployments/") :].partition("/")
            deployment, path = unquote(name), "/" + rest
            if b"api-version=" not in request.query:
                conn.send_json(404, wire.error(404, "Resource not found (no api-version)"))
                return None
        header = b"x-api-key" if anthropic else b"api-key" if deployment else b"authorization"
        if gemini is not None and request.header(b"authorization") is None:
            header = b"x-goog-api-key"  # Gemini API; Vertex sends a Bearer token
            if b"key=" in request.query:
                key = request.query.split(b"key=", 1)[1].split(b"&", 1)[0]
                request.headers.append((header, unquote(key.decode()).encode()))
        if bedrock is not None:
            signed = self.api_key is None or bedrock_wire.authorized(
                request.headers, request.path, request.query, request.body, self.api_key
            )
            if not signed:
                conn.send_json(
                    403,
                    error(
                        403,
                        "The request signature we calculated does not "
                        "match the signature you provided.",
                    ),
                    bedrock_wire.error_headers(403),
                )
                return None
        elif self.api_key is not None and not self._authorized(request, header):
            conn.send_json(401, error(401))
            return None
        if anthropic and not request.header(b"anthropic-version"):
            conn.send_json(400, error(400, "anthropic-version: header is required"))
            return None
        if request.method == "GET" and path == "/models":
            data = [
                {"id": m, "object": "model", "created": 1715367049, "owned_by": "mock"}
                for m in MODELS
            ]
            conn.send_json(200, orjson.dumps({"object": "list", "data": data}))
            return None
        if request.method == "GET" and path.startswith("/models/"):
            model = path[len("/models/") :]
            if model not in MODELS:
                conn.send_json(404, wire.error(404, f"The model `{model}` does not exist."))
            else:
                conn.send_json(
                    200,
                    orjson.dumps(
                        {"id": model, "object": "model", "created": 1715367049, "owned_by": "mock"}
                    ),
                )
            return None
        handler = {
            "/chat/completions": self._chat,
            "/completions": self._completion,
            "/embeddings": self._embedding,
            "/responses": self._responses,
            "/messages": self._messages,
            "/messages/count_tokens": self._count_tokens,
        }.get(path)
        if gemini is not None:
            handler = self._gemini
        elif bedrock is not None:
            handler = self._bedrock
        elif cohere:
            handler = {"/v2/chat": self._cohere_chat, "/v2/embed": self._cohere_embed}.get(
                request.path
            )
        if handler is None or request.method != "POST":
            conn.send_json(404, error(404, f"Invalid URL ({request.method} {request.path})"))
            return None
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            conn.send_json(400, error(400, "We could not parse the JSON body of your request."))
            return None
        if isinstance(body, dict) and deployment is not None:
            body["model"] = deployment  # Azure takes the model from the path
        if isinstance(body, dict) and gemini is not None:
            body["model"] = unquote(gemini[0])  # so does Gemini
        if isinstance(body, dict) and bedrock is not None:
            body["model"] = bedrock[0]  # and Bedrock
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            conn.send_json(400, error(400, "model: Field required"))
            return None
        model, settings = split_model(body["model"])
        try:
            spec = self.defaults.merged((request.header(b"x-mock-fault") or b"").decode()).merged(
                settings
            )
        except FaultSpecError as exc:
            conn.send_json(400, error(400, str(exc)))
            return None
        self.recent[-1]["model"] = body["model"]
        self.recent[-1]["body"] = body
        if spec.reset or (spec.reset_rate and self.random.random() < spec.reset_rate):
            _reset(conn)
            return None
        status = spec.status
        if status is None and spec.error_rate and self.random.random() < spec.error_rate:
            status = self.random.choice(spec.error_status)
        if status is not None:
            if anthropic and status == 503:
                status = 529  # Anthropic's "overloaded"
            return self._fail(
                conn, status, spec, error, bedrock_wire.error_headers(status) if bedrock else []
            )
        return handler(conn, request, body, model, spec)

    def _authorized(self, request: Request, header: bytes) -> bool:
        value = request.header(header) or b""
        if header == b"authorization":
            return value == b"Bearer " + (self.api_key or b"")
        return value == self.api_key

    def _inspect(self, path: str, request: Request, conn: HttpConnection) -> None:
        if path == "/_mock/stats":
            conn.send_json(
                200,
                orjson.dumps(
                    {
                        "name": self.name,
                        "requests": self.requests_seen,
                        "abandoned": self.abandoned,
                        "streams": [s.as_dict() for s in self.streams.values()],
                    }
                ),
            )
        elif path == "/_mock/requests":
            conn.send_json(200, orjson.dumps(list(self.recent)))
        elif path == "/_mock/reset" and request.method == "POST":
            self.requests_seen = 0
            self.abandoned = 0
            self.recent.clear()
            self.streams.clear()
            conn.send_json(200, b'{"reset":true}')
        else:
            conn.send_json(404, wire.error(404, "unknown mock inspection endpoint"))

    def _fail(
        self,
        conn: HttpConnection,
        status: int,
        spec: FaultSpec,
        error: Callable[[int], bytes],
        headers: list[tuple[bytes, bytes]],
    ) -> Awaitable[None] | None:
        if status in (429, 503, 529):
            headers = [*headers, (b"retry-after", b"1")]
        if not spec.latency_ms:
            conn.send_json(status, error(status), headers)
            return None

        async def later() -> None:
            await asyncio.sleep(spec.latency_ms / 1000)
            conn.send_json(status, error(status), headers)

        return later()

    # -- chat completions ----------------------------------------------------------------------

    def _chat(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            conn.send_json(400, wire.error(400, "'messages' must be an array of objects"))
            return None
        cid = f"chatcmpl-mock{next(self.ids)}"
        reply = plan(_openai_ask(messages, body), spec, "call_" + cid[-8:])
        finish = {"stop_sequence": "stop"}.get(reply.finish, reply.finish)
        created = int(time.time())
        use = wire.usage(wire.prompt_tokens(messages), reply.completion_tokens)
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if reply.tool_calls else reply.text,
                "refusal": None,
                "annotations": [],
            }
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments_json},
                    }
                    for c in reply.tool_calls
                ]
            n = body.get("n") or 1
            payload = wire.chat_completion(
                cid, created, model, message, finish, n if isinstance(n, int) and n > 0 else 1, use
            )
            return self._send_body(conn, payload, spec)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
            return wire.chat_chunk(cid, created, model, delta, reason, include_usage)

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        for i, call in enumerate(reply.tool_calls):
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            arguments = call.arguments_json
            third = max(1, len(arguments) // 3)
            for start in range(0, len(arguments), third):
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "function": {"arguments": arguments[start : start + third]},
                                }
                            ]
                        }
                    )
                )
        for piece in wire.split_evenly(reply.text.split(" ") if reply.text else [], spec.chunks):
            events.append(chunk({"content": piece + "." * spec.pad if spec.pad else piece}))
        events.append(chunk({}, finish))
        if include_usage:
            events.append(wire.chat_usage_chunk(cid, created, model, use))
        events.append(wire.DONE)
        return self._stream(conn, cid, events, spec, wire.stream_error_event())

    # -- Anthropic messages ----------------------------------------------------------------------

    def _messages(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        problem = anthropic_wire.validate(body)
        if problem is not None:
            conn.send_json(400, anthropic_wire.error(400, problem))
            return None
        mid = f"msg_mock{next(self.ids):06d}"
        reply = plan(anthropic_wire.ask(body), spec, mid[-6:])
        msg = anthropic_wire.message(mid, model, reply, body)
        if not body.get("stream"):
            return self._send_body(conn, orjson.dumps(msg), spec)
        return self._stream(
            conn,
            mid,
            anthropic_wire.stream_events(msg, spec.chunks),
            spec,
            anthropic_wire.stream_error_event(),
        )

    def _responses(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        rid = f"resp_mock{next(self.ids):06d}"
        reply = plan(responses_wire.ask(body), spec, "call_" + rid[-6:])
        full = responses_wire.response(rid, model, reply, body)
        if not body.get("stream"):
            return self._send_body(conn, orjson.dumps(full), spec)
        return self._stream(
            conn,
            rid,
            responses_wire.stream_events(full, spec.chunks),
            spec,
            responses_wire.stream_error_event(),
        )

    def _bedrock(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        body.pop("model", None)
        if request.path.endswith("/count-tokens"):
            return self._counted(conn, bedrock_wire.count_tokens(body), bedrock_wire.error)
        problem = bedrock_wire.validate(body)
        if problem is not None:
            conn.send_json(400, bedrock_wire.error(400, problem), bedrock_wire.error_headers(400))
            return None
        sid = f"bedrock-{next(self.ids):06d}"
        full = bedrock_wire.response(plan(bedrock_wire.ask(body), spec, sid[-6:]), body)
        if not request.path.endswith("/converse-stream"):
            return self._send_body(conn, orjson.dumps(full), spec)
        return self._stream(
            conn,
            sid,
            bedrock_wire.stream_events(full, spec.chunks),
            spec,
            bedrock_wire.stream_error_event(),
            bedrock_wire.CONTENT_TYPE,
        )

    def _cohere_chat(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        problem = cohere_wire.validate(body)
        if problem is not None:
            conn.send_json(400, cohere_wire.error(400, problem))
            return None
        mid = f"mock-{next(self.ids):06d}"
        full = cohere_wire.response(mid, plan(cohere_wire.ask(body), spec, mid[-6:]), body)
        if not body.get("stream"):
            return self._send_body(conn, orjson.dumps(full), spec)
        return self._stream(
            conn,
            mid,
            cohere_wire.stream_events(full, spec.chunks),
            spec,
            cohere_wire.stream_error_event(),
        )

    def _cohere_embed(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        result = cohere_wire.embed(f"mock-{next(self.ids):06d}", body)
        if isinstance(result, str):
            conn.send_json(400, cohere_wire.error(400, result))
            return None
        return self._send_body(conn, orjson.dumps(result), spec)

    def _gemini(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        body.pop("model", None)
        body = gemini_wire.normalize(body)
        if request.path.endswith(":countTokens"):
            return self._counted(conn, gemini_wire.count_tokens(body), gemini_wire.error)
        problem = gemini_wire.validate(body)
        if problem is not None:
            conn.send_json(400, gemini_wire.error(400, problem))
            return None
        rid = f"mockresp{next(self.ids):06d}"
        reply = plan(gemini_wire.ask(body), spec, rid)
        full = gemini_wire.response(rid, model, reply, body)
        if "streamGenerateContent" not in request.path:
            return self._send_body(conn, orjson.dumps(full), spec)
        if b"alt=sse" not in request.query:
            conn.send_json(400, gemini_wire.error(400, "the mock streams only with alt=sse"))
            return None
        return self._stream(
            conn,
            rid,
            gemini_wire.stream_events(full, spec.chunks),
            spec,
            gemini_wire.stream_error_event(),
        )

    def _counted(
        self, conn: HttpConnection, result: dict[str, Any] | str, error: Callable[[int, str], bytes]
    ) -> None:
        if isinstance(result, str):
            conn.send_json(400, error(400, result))
        else:
            conn.send_json(200, orjson.dumps(result))

    def _count_tokens(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> None:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            conn.send_json(400, anthropic_wire.error(400, "messages: Field required"))
            return
        conn.send_json(200, orjson.dumps(anthropic_wire.count_tokens(body)))

    # -- legacy completions --------------------------------------------------------------------

    def _completion(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        prompt = body.get("prompt", "")
        prompt_text = (
            prompt if isinstance(prompt, str) else " ".join(p for p in prompt if isinstance(p, str))
        )
        # /v1/completions defaults to 16 tokens, as OpenAI's does.
        stop = body.get("stop")
        reply = plan(
            Ask(
                prompt_text,
                max_tokens=body.get("max_tokens", 16),
                stop=[stop] if isinstance(stop, str) else list(stop or []),
            ),
            spec,
            "",
        )
        text, completion = reply.text, reply.completion_tokens
        finish = "length" if reply.finish == "length" else "stop"
        cid = f"cmpl-mock{next(self.ids)}"
        created = int(time.time())
        use = wire.usage(wire.count_tokens(prompt_text), completion)
        if not body.get("stream"):
            return self._send_body(
                conn,
                orjson.dumps(wire.text_completion(cid, created, model, text, finish, use, False)),
                spec,
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        pieces = wire.split_evenly(text.split(" ") if text else [], spec.chunks)
        events = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            events.append(
                wire.sse(
                    wire.text_completion(
                        cid, created, model, piece, finish if last else None, None, True
                    )
                )
            )
        if include_usage:
            events.append(wire.sse(wire.text_completion(cid, created, model, None, "", use, True)))
        events.append(wire.DONE)
        return self._stream(conn, cid, events, spec, wire.stream_error_event())

    # -- embeddings ------------------------------------------------------------------------------

    def _embedding(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        raw = body.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            inputs = [raw]
        elif isinstance(raw, list) and raw:
            inputs = raw
        else:
            conn.send_json(400, wire.error(400, "'input' must be a string or a non-empty array"))
            return None
        dims = body.get("dimensions") or spec.dims
        encoding = body.get("encoding_format") or "float"
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            tokens += wire.count_tokens(text) if isinstance(item, str) else len(item)
            vector = wire.embedding_vector(text, dims)
            data.append(
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": wire.encode_vector(vector, encoding),
                }
            )
        payload = orjson.dumps(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
        return self._send_body(conn, payload, spec)

    # -- writing -----------------------------------------------------------------------------------

    def _send_body(
        self, conn: HttpConnection, payload: bytes, spec: FaultSpec
    ) -> Awaitable[None] | None:
        if not spec.latency_ms and spec.cut_after is None:
            conn.send_json(200, payload)
            return None
        return self._send_body_later(conn, payload, spec)

    async def _send_body_later(self, conn: HttpConnection, payload: bytes, spec: FaultSpec) -> None:
        if spec.latency_ms:
            try:
                await asyncio.sleep(spec.latency_ms / 1000)
            except asyncio.CancelledError:
                self.abandoned += 1
                raise
        if spec.cut_after is not None:
            # Promise the whole body, send half, then drop the connection.
            assert conn.transport is not None
            conn.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload[: len(payload) // 2])
            )
            await asyncio.sleep(0.05)
            conn.abort()
            return
        conn.send_json(200, payload)

    async def _stream(
        self,
        conn: HttpConnection,
        sid: str,
        events: list[bytes],
        spec: FaultSpec,
        error_event: bytes,
        content_type: bytes = b"text/event-stream; charset=utf-8",
    ) -> None:
        record = StreamRecord(sid)
        self.streams[sid] = record
        while len(self.streams) > 100:
            self.streams.popitem(last=False)
        try:
            if spec.latency_ms:
                await asyncio.sleep(spec.latency_ms / 1000)
            conn.start_stream(
                200, [(b"content-type", content_type), (b"cache-control", b"no-cache")]
            )
            delay = spec.chunk_delay_ms / 1000
            for i, event in enumerate(events):
                if spec.stream_error_after is not None and i >= spec.stream_error_after:
                    # The provider's own report of a failure after the stream began.
                    conn.write_chunk(error_event)
                    conn.end_stream()
                    record.state = "errored"
                    return
                if spec.cut_after is not None and i >= spec.cut_after:
                    # Half an event, then the connection drops without the final chunk.
                    conn.write_chunk(event[: len(event) // 2])
                    await asyncio.sleep(0.02)
                    record.state = "cut"
                    conn.abort()
                    return
                if delay and i:
                    await asyncio.sleep(delay)
                conn.write_chunk(event)
                await conn.drain()
                record.bytes_sent += len(event)
                record.chunks_sent += 1
            conn.end_stream()
            record.state = "completed"
        except (asyncio.CancelledError, ClientGone):
            record.state = "cancelled"
            raise


def _reset(conn: HttpConnection) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than a FIN."""
    transport = conn.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def serve_mock(
    host: str,
    port: int,
    defaults: FaultSpec,
    api_key: str | None = None,
    ready_message: bool = True,
    tls: tuple[str, str] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    mock = MockProvider(defaults, api_key)
    limits = HttpLimits(keepalive_timeout_s=300.0)
    server = HttpServer(mock.dispatch, limits, Deadlines())
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
    await server.start(sock, context)
    if ready_message:
        log.info(
            "mock provider listening on %s://%s:%d/v1",
            "https" if tls else "http",
            host,
            sock.getsockname()[1],
        )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.drain(2.0)


def _openai_ask(messages: list[dict[str, Any]], body: dict[str, Any]) -> Ask:
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(wire.message_text(message.get("content")))
    last_user = next(
        (
            wire.message_text(m.get("content"))
            for m in reversed(messages)
            if m.get("role") == "user"
        ),
        "",
    )
    tools = [
        (t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if t.get("type") == "function"
    ]
    choice = body.get("tool_choice")
    fmt = body.get("response_format") or {}
    schema = None
    if fmt.get("type") == "json_object":
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    elif fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    stop = body.get("stop")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return Ask(
        last_user,
        list(reversed(results)) if results else None,
        tools,
        (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None,
        choice == "none",
        schema,
        max_tokens if isinstance(max_tokens, int) else None,
        [stop] if isinstance(stop, str) else list(stop or []),
    )
