"""`tollway mock-provider`: a fake LLM upstream for tests, demos and load tests.

It speaks OpenAI's formats (Chat Completions, Completions, Embeddings, Responses, models,
images, audio, moderations, Files and Batches (mock_batches), and the Azure OpenAI paths),
Anthropic's Messages, Gemini's generateContent (Gemini API and Vertex AI paths), Cohere's v2
chat, embed and rerank, the OpenAI-compatible servers' rerank (vLLM, Jina), Bedrock's Converse,
its image models' InvokeModel and its agent runtime's Rerank (mock_bedrock_media), and OpenAI's
Realtime API (`GET /v1/realtime` upgraded to a WebSocket: mock_realtime), each in its own module
(images, audio, moderations and rerank are routed by mock_media, which also reads the multipart
forms of the upload endpoints before any body is parsed as JSON); this one
routes a request to its format, checks its credentials, and applies the `FaultSpec` (see
mock_faults) that decides latency, stream shape and faults. mock_reply decides what to answer;
mock_delivery writes it out. It runs on Tollway's own HTTP server layer, so it is fast enough
to load-test a gateway against.

Inspection endpoints, for tests: `GET /_mock/stats` (requests, and each recent stream's state
and bytes sent), `GET /_mock/requests` (the last requests' paths, headers and bodies; a form's
files by name, type and size), `POST /_mock/reset`, and `GET /_mock/images/{name}.png` (the
image behind an images answer's `url`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import signal
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson

from tollway.config.transport import HttpLimits
from tollway.proxy.connection import HttpConnection
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.http import Request
from tollway.proxy.server import HttpServer, bind_socket
from tollway.testing import mock_anthropic as anthropic_wire
from tollway.testing import mock_bedrock as bedrock_wire
from tollway.testing import mock_bedrock_media as bedrock_media
from tollway.testing import mock_cohere as cohere_wire
from tollway.testing import mock_gemini as gemini_wire
from tollway.testing import mock_openai as wire
from tollway.testing import mock_openai_chat as chat
from tollway.testing import mock_realtime as realtime
from tollway.testing import mock_responses as responses_wire
from tollway.testing.mock_batches import MockBatches
from tollway.testing.mock_delivery import Delivery, reset_connection
from tollway.testing.mock_faults import FaultSpec, FaultSpecError, split_model
from tollway.testing.mock_media import PNG, MediaEndpoints
from tollway.testing.mock_reply import plan

log = logging.getLogger("tollway.mock")

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o4-mini", "text-embedding-3-small")


class MockProvider:
    def __init__(self, defaults: FaultSpec, api_key: str | None = None, name: str = "mock") -> None:
        self.defaults = defaults
        self.api_key = api_key.encode() if api_key else None
        self.name = name
        self.ids = itertools.count(1)
        self.requests_seen = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.delivery = Delivery()
        self.random = random.Random(0)
        self.kept = responses_wire.KeptResponses()
        self.media = MediaEndpoints(self.delivery, self.ids)
        self.batches = MockBatches(defaults)

    # -- routing -----------------------------------------------------------------------------------

    def dispatch(self, request: Request, conn: HttpConnection) -> Awaitable[None] | None:
        path = request.path.removeprefix("/v1")
        if path.startswith("/_mock/"):
            self._inspect(path, request, conn)
            return None
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
        bedrock = bedrock_wire.split_path(request.path) or bedrock_media.route(request)
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
        if path.startswith("/openai/v1/"):
            # Azure OpenAI's v1 API (its realtime endpoint): the deployment in the query.
            deployment, path = "", path[len("/openai/v1") :]
        elif path.startswith("/openai/deployments/"):
            # Azure OpenAI: /openai/deployments/{deployment}/chat/completions?api-version=...
            name, _, rest = path[len("/openai/deployments/") :].partition("/")
            deployment, path = unquote(name), "/" + rest
            if b"api-version=" not in request.query:
                conn.send_json(404, wire.error(404, "Resource not found (no api-version)"))
                return None
        azure = deployment is not None
        header = b"x-api-key" if anthropic else b"api-key" if azure else b"authorization"
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
        if deployment is None and not anthropic and MockBatches.serves(path):
            self.batches.handle(request, conn, path)  # OpenAI's Files and Batches APIs
            return None
        if request.method == "GET" and path == "/realtime" and realtime.wants_upgrade(request):
            return realtime.open_session(
                request,
                conn,
                defaults=self.defaults,
                rng=self.random,
                ids=self.ids,
                delivery=self.delivery,
                record=self.recent[-1],
            )
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
        }.get(path) or self.media.handlers.get(path)
        if gemini is not None:
            handler = self._gemini
        elif bedrock is not None:
            handler = bedrock_media.handler_for(request.path, self.media.ctx) or self._bedrock
        elif cohere:
            handler = {
                "/v2/chat": self._cohere_chat,
                "/v2/embed": self._cohere_embed,
                "/v2/rerank": self.media.cohere_rerank,
            }.get(request.path)
        if path.startswith("/responses/") and request.method in ("GET", "DELETE"):
            conn.send_json(*self.kept.answer(request.method, path[len("/responses/") :]))
            return None
        if handler is None or request.method != "POST":
            conn.send_json(404, error(404, f"Invalid URL ({request.method} {request.path})"))
            return None
        form = self.media.form(request, path)  # multipart uploads (images, audio)
        if isinstance(form, bytes):
            conn.send_json(400, form)
            return None
        try:
            body = orjson.loads(request.body) if form is None else form
        except orjson.JSONDecodeError:
            conn.send_json(400, error(400, "We could not parse the JSON body of your request."))
            return None
        if isinstance(body, dict) and deployment:
            body["model"] = deployment  # Azure takes the model from the path
        if isinstance(body, dict) and gemini is not None:
            body["model"] = unquote(gemini[0])  # so does Gemini
        if isinstance(body, dict) and bedrock is not None:
            body["model"] = bedrock[0]  # and Bedrock
        if isinstance(body, dict):
            self.media.default_model(path, body)  # images and moderations may name none
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
            reset_connection(conn)
            return None
        if spec.refuse is not None:
            conn.send_json(400, _refusal(spec.refuse))
            return None
        status = spec.status
        if status is None and spec.error_rate and self.random.random() < spec.error_rate:
            status = self.random.choice(spec.error_status)
        if status is not None:
            if anthropic and status == 503:
                status = 529  # Anthropic's "overloaded"
            return self.delivery.failure(
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
                        "abandoned": self.delivery.abandoned,
                        "streams": [s.as_dict() for s in self.delivery.streams.values()],
                    }
                ),
            )
        elif path.startswith("/_mock/images/") and path.endswith(".png"):
            conn.send(200, [(b"content-type", b"image/png")], PNG)  # images' `url`
        elif path == "/_mock/requests":
            conn.send_json(200, orjson.dumps(list(self.recent)))
        elif path == "/_mock/deleted_files":
            # Files deleted through the Files API, with their content: what a test checks
            # of an upload the gateway has since deleted.
            conn.send_json(200, orjson.dumps(self.batches.deleted_files()))
        elif path == "/_mock/reset" and request.method == "POST":
            self.requests_seen = 0
            self.recent.clear()
            self.delivery.clear()
            conn.send_json(200, b'{"reset":true}')
        else:
            conn.send_json(404, wire.error(404, "unknown mock inspection endpoint"))

    # -- OpenAI ------------------------------------------------------------------------------------

    def _chat(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        problem = chat.chat_problem(body)
        if problem is not None:
            conn.send_json(400, wire.error(400, problem))
            return None
        cid = f"chatcmpl-mock{next(self.ids)}"
        reply = plan(chat.chat_ask(body), spec, "call_" + cid[-8:])
        created = int(time.time())
        if not body.get("stream"):
            answer = chat.chat_body(cid, created, model, reply, body)
            if spec.no_usage:
                answer = orjson.dumps({**orjson.loads(answer), "usage": None})
            return self.delivery.body(conn, answer, spec)
        if spec.no_usage:
            body = {**body, "stream_options": None}
        events = chat.chat_stream(cid, created, model, reply, body, spec)
        return self.delivery.stream(conn, cid, events, spec, wire.stream_error_event())

    def _completion(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        reply = plan(chat.completion_ask(body), spec, "")
        cid = f"cmpl-mock{next(self.ids)}"
        created = int(time.time())
        if not body.get("stream"):
            payload = chat.completion_body(cid, created, model, reply, body)
            return self.delivery.body(conn, payload, spec)
        events = chat.completion_stream(cid, created, model, reply, body, spec.chunks)
        return self.delivery.stream(conn, cid, events, spec, wire.stream_error_event())

    def _embedding(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        result = wire.embeddings(model, body, spec.dims)
        if isinstance(result, str):
            conn.send_json(400, wire.error(400, result))
            return None
        return self.delivery.body(conn, orjson.dumps(result), spec)

    def _responses(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        refused = self.kept.unknown_previous(body)
        if refused is not None:
            conn.send_json(400, refused)
            return None
        rid = f"resp_mock{next(self.ids):06d}"
        reply = plan(responses_wire.ask(body), spec, "call_" + rid[-6:])
        full = responses_wire.response(rid, model, reply, body)
        self.kept.keep(full, body)
        if not body.get("stream"):
            return self.delivery.body(conn, orjson.dumps(full), spec)
        return self.delivery.stream(
            conn,
            rid,
            responses_wire.stream_events(full, spec.chunks),
            spec,
            responses_wire.stream_error_event(),
        )

    # -- Anthropic messages ------------------------------------------------------------------------

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
            return self.delivery.body(conn, orjson.dumps(msg), spec)
        return self.delivery.stream(
            conn,
            mid,
            anthropic_wire.stream_events(msg, spec.chunks),
            spec,
            anthropic_wire.stream_error_event(),
        )

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

    # -- Bedrock, Cohere, Gemini -------------------------------------------------------------------

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
            self._counted(conn, bedrock_wire.count_tokens(body), bedrock_wire.error)
            return None
        problem = bedrock_wire.validate(body)
        if problem is not None:
            conn.send_json(400, bedrock_wire.error(400, problem), bedrock_wire.error_headers(400))
            return None
        sid = f"bedrock-{next(self.ids):06d}"
        full = bedrock_wire.response(plan(bedrock_wire.ask(body), spec, sid[-6:]), body)
        if not request.path.endswith("/converse-stream"):
            return self.delivery.body(conn, orjson.dumps(full), spec)
        return self.delivery.stream(
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
            return self.delivery.body(conn, orjson.dumps(full), spec)
        return self.delivery.stream(
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
        return self.delivery.body(conn, orjson.dumps(result), spec)

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
            self._counted(conn, gemini_wire.count_tokens(body), gemini_wire.error)
            return None
        problem = gemini_wire.validate(body)
        if problem is not None:
            conn.send_json(400, gemini_wire.error(400, problem))
            return None
        rid = f"mockresp{next(self.ids):06d}"
        reply = plan(gemini_wire.ask(body), spec, rid)
        full = gemini_wire.response(rid, model, reply, body)
        if "streamGenerateContent" not in request.path:
            return self.delivery.body(conn, orjson.dumps(full), spec)
        if b"alt=sse" not in request.query:
            conn.send_json(400, gemini_wire.error(400, "the mock streams only with alt=sse"))
            return None
        return self.delivery.stream(
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


async def serve_mock(
    host: str,
    port: int,
    defaults: FaultSpec,
    api_key: str | None = None,
    ready_message: bool = True,
    tls: tuple[str, str] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT. A port that cannot be listened on (one already in use,
    say) ends the process with status 1 and a one-line message, not a traceback."""
    loop = asyncio.get_running_loop()
    mock = MockProvider(defaults, api_key)
    # Uploads up to 512 MiB, for tests of large image edits and audio through a gateway.
    limits = HttpLimits(keepalive_timeout_s=300.0, max_body_bytes=512 * 1024 * 1024)
    server = HttpServer(mock.dispatch, limits, Deadlines())
    try:
        sock = bind_socket(host, port, reuse_port=False)
    except OSError as exc:
        log.error("mock provider cannot listen on %s:%d: %s", host, port, exc.strerror)
        raise SystemExit(1) from None
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


_REFUSALS = {
    "content_policy": (
        "content_policy_violation",
        "Your request was rejected as a result of our safety system (mock).",
    ),
    "context_length": (
        "context_length_exceeded",
        "This model's maximum context length was exceeded (mock).",
    ),
}


def _refusal(kind: str) -> bytes:
    code, message = _REFUSALS.get(kind, ("invalid_request", f"Refused: {kind} (mock)."))
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )
