"""The mock provider's endpoints beyond chat: OpenAI's images (mock_images), audio
(mock_audio) and moderations (mock_moderation), and rerank in Cohere's and the
OpenAI-compatible servers' shapes (mock_rerank).

`MediaEndpoints` gives mock_provider its handlers by path, reads the multipart forms of the
upload endpoints (before any JSON parsing), and fills in the model a request may leave out.
Credentials and the `FaultSpec`'s status, error rate, reset and refusal are mock_provider's,
as for every endpoint; latency and cuts are applied here, as each answer goes out.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.testing import mock_audio, mock_images, mock_moderation, mock_rerank
from tollway.testing import mock_cohere as cohere_wire
from tollway.testing.mock_delivery import Delivery
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_forms import Handler, MediaContext, param_error, read_form, send_body

# Endpoints whose request is a multipart form, not JSON.
FORM_PATHS = frozenset({"/images/edits", "/images/variations", "/audio/transcriptions"})
FORM_PATHS |= {"/audio/translations"}
# The model of a request that names none, where the real API has a default.
DEFAULT_MODELS = {
    "/images/generations": "dall-e-2",
    "/images/edits": "dall-e-2",
    "/images/variations": "dall-e-2",
    "/moderations": mock_moderation.DEFAULT_MODEL,
    "/rerank": "mock-rerank",  # vLLM serves one model; Jina needs one, the mock does not
}
PNG = mock_images.PNG


class MediaEndpoints:
    def __init__(self, delivery: Delivery, ids: itertools.count[int]) -> None:
        self.ctx = MediaContext(delivery, ids)
        self.handlers: dict[str, Handler] = {
            "/images/generations": functools.partial(mock_images.generations, self.ctx),
            "/images/edits": functools.partial(mock_images.edits, self.ctx),
            "/images/variations": functools.partial(mock_images.variations, self.ctx),
            "/audio/speech": functools.partial(mock_audio.speech, self.ctx),
            "/audio/transcriptions": functools.partial(mock_audio.transcriptions, self.ctx),
            "/audio/translations": functools.partial(mock_audio.translations, self.ctx),
            "/moderations": self.moderations,
            "/rerank": self.rerank,
        }

    def form(self, request: Request, path: str) -> dict[str, Any] | bytes | None:
        """The record of an upload endpoint's form, or the 400 body for a malformed one; None
        for the other endpoints (whose body is JSON)."""
        if path not in FORM_PATHS:
            return None
        record = read_form(request)
        if isinstance(record, str):
            return param_error(record, None)
        return record

    @staticmethod
    def default_model(path: str, body: dict[str, Any]) -> None:
        if path in DEFAULT_MODELS and body.get("model") in (None, ""):
            body["model"] = DEFAULT_MODELS[path]

    def moderations(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        answer = mock_moderation.moderate(f"modr-mock{self.ctx.next_id():06d}", model, body)
        if isinstance(answer, str):
            conn.send_json(400, param_error(answer, "input"))
            return None
        return send_body(self.ctx.delivery, conn, orjson.dumps(answer), spec)

    def rerank(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        answer = mock_rerank.compatible(f"rerank-mock{self.ctx.next_id():06d}", model, body)
        if isinstance(answer, str):
            conn.send_json(400, param_error(answer, None))
            return None
        return send_body(self.ctx.delivery, conn, orjson.dumps(answer), spec)

    def cohere_rerank(
        self,
        conn: HttpConnection,
        request: Request,
        body: dict[str, Any],
        model: str,
        spec: FaultSpec,
    ) -> Awaitable[None] | None:
        answer = mock_rerank.cohere(f"mock-{self.ctx.next_id():06d}", body)
        if isinstance(answer, str):
            conn.send_json(400, cohere_wire.error(400, answer))
            return None
        return send_body(self.ctx.delivery, conn, orjson.dumps(answer), spec)
