"""Uploads to the model APIs (an image to edit, audio to transcribe) taken as they arrive.

The routes of the form APIs take their bodies streamed, up to `max_upload_bytes`. The first
`WHOLE_FORM` bytes are read: a form that ends within them is a call like any other (read
whole, checked whole, retried on another deployment if need be). A larger one is sent on as
it comes, in bounded memory: its `model` field must be among its first bytes (client
libraries write text fields before files), the call's policies run on it, the first
deployment that serves the endpoint gets the form (its model renamed there if the deployment
says so, the length adjusted), and the rest of the upload follows as the client sends it,
with backpressure both ways. Such a call is not retried: its body is gone once sent.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tollway.config.transport import head_prefix
from tollway.errors import GatewayError
from tollway.llm import multipart
from tollway.llm.client_apis import ClientApi, Intake
from tollway.llm.media_apis import not_a_form
from tollway.policies.base import Pending, Verdict
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.calls import answer_native, complete_head
from tollway.proxy.handlers.translated import unavailable
from tollway.proxy.replies import (
    failure_outcome,
    finish,
    refuse,
    send_error,
    send_verdict,
    served_headers,
    upstream_failure,
)
from tollway.proxy.request_body import BodyError, RequestBody, StreamedRequest
from tollway.proxy.upload import client_failure, exchange
from tollway.proxy.upstream import UpstreamError

if TYPE_CHECKING:
    from tollway.proxy.handlers.model_call import ModelCalls

# A form that ends within this is read whole.
WHOLE_FORM = 1024 * 1024


class PrefixedBody:
    """The form as it goes upstream: its first bytes (rewritten), then the rest as it comes."""

    __slots__ = ("_first", "_rest", "length")

    def __init__(self, first: bytes, rest: RequestBody, length: int | None) -> None:
        self._first: bytes | None = first
        self._rest = rest
        self.length = length

    async def next(self) -> bytes | None:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await self._rest.next()

    def rewind(self) -> bool:
        return False  # what was sent is not kept


async def take_form(
    calls: ModelCalls, ctx: RequestContext, conn: HttpConnection, api: ClientApi
) -> None:
    request = ctx.request
    assert isinstance(request, StreamedRequest)
    upload = request.upload
    pieces: list[bytes] = []
    size = 0
    data: bytes | None = b""
    try:
        while size < WHOLE_FORM:
            data = await upload.next()
            if data is None:
                break
            pieces.append(data)
            size += len(data)
    except BodyError as exc:
        refuse(ctx, conn, GatewayError(exc.status, exc.message, code="invalid_body"))
        return
    except BaseException:
        finish(ctx, "client_disconnect")  # the client left (or the worker stops) meanwhile
        raise
    if data is None:
        # The whole form is in: a call like any other.
        request.body = b"".join(pieces)
        work = calls.take(ctx, conn, api)
        if work is not None:
            await work
        return
    try:
        await _stream(calls, ctx, conn, api, b"".join(pieces), upload)
    finally:
        finish(ctx)


async def _stream(
    calls: ModelCalls,
    ctx: RequestContext,
    conn: HttpConnection,
    api: ClientApi,
    prefix: bytes,
    upload: RequestBody,
) -> None:
    boundary = multipart.boundary_of(ctx.request.header(b"content-type"))
    if boundary is None:
        _refuse(ctx, conn, upload, not_a_form(api.endpoint))
        return
    try:
        found = multipart.leading_parts(prefix, boundary)
        if multipart.count(found, "model") > 1:
            raise multipart.MultipartError("it gives 'model' more than once")
        model = multipart.field(prefix, found, "model")
    except multipart.MultipartError as exc:
        _refuse(
            ctx,
            conn,
            upload,
            GatewayError(
                400, f"The multipart body could not be read: {exc}.", code="invalid_multipart"
            ),
        )
        return
    # No default model here: a model field later in the form would then make two.
    if not model:
        _refuse(
            ctx,
            conn,
            upload,
            GatewayError(
                400,
                "A large form must give its model field before its files (within its first "
                f"{WHOLE_FORM} bytes).",
                param="model",
                code="missing_model",
            ),
        )
        return
    ctx.model = model
    ctx.stream = False
    route = ctx.route
    assert route is not None
    if route.pipeline.body_phase:
        verdict = route.pipeline.body(ctx)
        if isinstance(verdict, Pending):
            verdict = await verdict.waiter
        if verdict is not None:
            _refuse(ctx, conn, upload, verdict)
            return
    model_route = ctx.config.route(model)
    service = route.service
    if model_route is None or (service is not None and model not in service.models):
        _refuse(ctx, conn, upload, api.no_such_model(model))
        return
    try:
        attempts = calls.attempts(ctx, model_route, Intake(model, False, False))
    except GatewayError as error:
        _refuse(ctx, conn, upload, error)
        return
    usable = [a for a in attempts if a.deployment.provider.serves(api)]
    if not usable:
        _refuse(ctx, conn, upload, unavailable(model, attempts[0].deployment.provider, api))
        return
    attempt = usable[0]
    deployment = attempt.deployment
    provider = deployment.provider
    upstream_model = deployment.model_for(attempt.route.name, model)
    first = prefix
    if upstream_model != model:
        first = multipart.replace_field(prefix, found, "model", upstream_model)
    length = None if upload.length is None else upload.length + len(first) - len(prefix)
    prefix_head = deployment.native_heads.get((api.name, False)) or head_prefix(
        b"POST",
        provider.path(api.endpoint, upstream_model),
        provider.host,
        (*provider.headers, *api.head_headers(False)),
    )
    head = complete_head(prefix_head, ctx, api, length)
    now = time.monotonic()
    ctx.deployment = deployment
    ctx.attempts = 1
    ctx.upstream_started_at = now
    state = calls.balancers.started(attempt.route, deployment, now)
    pump = None
    ok = False
    try:
        upstream, pump = await exchange(
            calls.upstreams.pool(provider), head, PrefixedBody(first, upload, length)
        )
        data = await upstream.read_all()
        ok = upstream.status < 500
    except UpstreamError as exc:
        broken = client_failure(pump)
        if isinstance(broken, BodyError):
            ctx.outcome = "refused"
            send_error(ctx, conn, GatewayError(broken.status, broken.message, code="invalid_body"))
        elif broken is None:
            ctx.outcome = failure_outcome(exc)
            send_error(ctx, conn, upstream_failure(provider, exc), served_headers(ctx))
        return
    finally:
        if pump is not None and not pump.done():
            pump.cancel()
        calls.balancers.finished(
            attempt.route,
            deployment,
            time.monotonic(),
            ok=ok,
            latency=time.monotonic() - now,
            state=state,
        )
    ctx.status = upstream.status
    answer_native(ctx, conn, api, provider, upstream.status, upstream.headers, data)


def _refuse(
    ctx: RequestContext, conn: HttpConnection, upload: RequestBody, verdict: Verdict
) -> None:
    """Answer before the upload is read: the rest of it is read and dropped."""
    upload.abandon()
    ctx.outcome = "refused"
    send_verdict(ctx, conn, verdict)
