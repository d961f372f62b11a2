"""Prompt APIs: a prompt template and its model served as a REST API (`POST {prefix}`, the typed
input as the body, the answer as JSON) and through the chat completions API as the model
`prompt:NAME`, with the variables in the request (docs/prompt-apis.md).

A call: its version (the published one; during an A/B test the other at its weight; or the one
it asks for with `x-tollway-version`) -> the input read and checked (400 naming each problem,
before any model is called) -> the chain's body phase (limits and budgets count the prompt's
model) -> the template rendered -> the model called (its deployments in its routing's order,
then its fallbacks, the next on failure) -> with an output schema, the answer read and
checked, repaired once, or refused (502 `invalid_output`) -> the answer, with the version
that made it. The call's record is one call: its tokens and cost, a repair's included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from tollway.config.prompt_openapi import PromptApiEntry
from tollway.config.prompt_openapi import document as openapi_document
from tollway.errors import GatewayError
from tollway.llm.client_apis import Intake
from tollway.llm.prompt_template import InputError, InputProblem
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.providers.base import StreamTranslator
from tollway.proxy.balancer import Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.exchange import open_stream
from tollway.proxy.handlers.chat_once import ChatCallFailed, chat_once
from tollway.proxy.handlers.model_call import plan
from tollway.proxy.handlers.prompt_chat import chat_answer, chat_variables, find
from tollway.proxy.handlers.translated import TRANSLATIONS
from tollway.proxy.replies import finish, refuse, send_error, served_headers
from tollway.proxy.routing import go_on_after
from tollway.proxy.streaming import relay_translated
from tollway.proxy.upstream import UpstreamError, Upstreams

if TYPE_CHECKING:
    from tollway.config.prompt_service import PromptVersion

VERSION_HEADER = b"x-tollway-version"
# Upstream answers that another deployment would answer the same way: not tried again.
_FINAL = frozenset((400, 401, 403, 404, 413, 422))
_MAX_LISTED = 5

# How an answer goes out: the call, its connection, the version, the output (the schema's
# value, or the text), and the text as the model wrote it.
Answer = Callable[[RequestContext, HttpConnection, "PromptVersion", Any, str], None]


@dataclass(frozen=True, slots=True)
class PromptRun:
    """What a version made of an input: the rendered messages, the model's last text, the
    output (the schema's value, or the text), and whether a repair was asked for."""

    messages: list[dict[str, str]]
    text: str
    value: Any
    repaired: bool = False


class PromptApis:
    """The worker's prompt-API handler, over its upstream pools and balancer state."""

    __slots__ = ("balancers", "upstreams")

    def __init__(self, upstreams: Upstreams, balancers: Balancers) -> None:
        self.upstreams = upstreams
        self.balancers = balancers

    # -- POST {prefix} ----------------------------------------------------------------------

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None and route.service is not None
        prompt = route.service.prompt
        assert prompt is not None
        asked = ctx.request.header(VERSION_HEADER)
        if asked is not None and not (asked.isdigit() and len(asked) <= 9):
            refuse(ctx, conn, _bad_version())
            return None
        version = prompt.choose(asked)
        try:
            variables = version.template.read_input(ctx.request.body)
        except InputError as error:
            refuse(ctx, conn, input_refusal(error))
            return None
        ctx.model = version.model
        ctx.stream = wants_stream(ctx)
        if ctx.stream and version.output is not None:
            refuse(ctx, conn, _no_stream())
            return None
        pipeline = route.pipeline
        if pipeline.body_phase:
            verdict = pipeline.body(ctx)
            if isinstance(verdict, Pending):
                return go_on_after(ctx, conn, verdict, partial(self._go, version, variables))
            if verdict is not None:
                refuse(ctx, conn, verdict)
                return None
        return self._go(version, variables, ctx, conn)

    def _go(
        self,
        version: PromptVersion,
        variables: dict[str, Any],
        ctx: RequestContext,
        conn: HttpConnection,
    ) -> Awaitable[None]:
        if ctx.stream:
            return self.stream(ctx, conn, version, variables)
        return self.answer(ctx, conn, version, variables, rest_answer)

    # -- GET {prefix}/openapi.json ------------------------------------------------------------

    def document(self, ctx: RequestContext, conn: HttpConnection) -> None:
        """The API's OpenAPI document (its published version), for the apps that call it."""
        route = ctx.route
        assert route is not None and route.service is not None
        service = route.service
        prompt = service.prompt
        assert prompt is not None
        primary = prompt.primary
        entry = PromptApiEntry(service.name, service.prefix, primary.number, primary.definition)
        host = (ctx.request.header(b"host") or b"").decode("latin-1")
        server = f"http://{host}" if host else None
        document = openapi_document([entry], f"Prompt API {service.name}", server)
        ctx.status = 200
        ctx.outcome = "completed"
        conn.send_json(200, orjson.dumps(document))
        finish(ctx)

    # -- /v1/chat/completions with the model prompt:NAME -------------------------------------

    def chat(
        self, ctx: RequestContext, conn: HttpConnection, intake: Intake
    ) -> Awaitable[None] | None:
        """A chat call of a prompt API (its body phase has run): the variables are the
        request's `variables`, else the last user message (a JSON object, or the text of an
        input with one string property)."""
        service = ctx.service if ctx.service is not None else find(ctx, intake.model)
        prompt = service.prompt if service is not None else None
        if prompt is None:
            refuse(ctx, conn, GatewayError(404, f"The model `{intake.model}` does not exist."))
            return None
        version = prompt.choose(ctx.request.header(VERSION_HEADER))
        try:
            if len(ctx.request.body) > version.template.max_input_bytes + 65536:
                raise InputError([InputProblem("$", "the request is too large for this API")])
            body = orjson.loads(ctx.request.body)
            variables = version.template.check_input(chat_variables(body, prompt))
        except InputError as error:
            refuse(ctx, conn, input_refusal(error, "variables"))
            return None
        return self.answer(ctx, conn, version, variables, chat_answer(intake))

    # -- the model's answer -------------------------------------------------------------------

    async def answer(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        version: PromptVersion,
        variables: Mapping[str, Any],
        reply: Answer,
    ) -> None:
        try:
            made = await self.run(ctx, version, variables)
        except asyncio.CancelledError:
            finish(ctx, "client_disconnect")
            raise
        except GatewayError as error:
            ctx.outcome = "refused" if ctx.attempts == 0 else "upstream_error"
            send_error(ctx, conn, error, served_headers(ctx))
            finish(ctx)
            return
        ctx.answer_headers = (
            *ctx.answer_headers,
            (b"x-tollway-prompt-version", b"%d" % version.number),
        )
        ctx.status = 200
        ctx.outcome = "completed"
        reply(ctx, conn, version, made.value, made.text)
        finish(ctx)

    async def run(
        self, ctx: RequestContext, version: PromptVersion, variables: Mapping[str, Any]
    ) -> PromptRun:
        """The version's answer to checked `variables` (GatewayError when there is none that
        fits); the call's deployment, attempts and usage go to `ctx`."""
        messages = version.template.render(variables)
        request: dict[str, Any] = {"model": version.model, "messages": messages}
        request.update(version.parameters)
        output = version.output
        if output is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": output.schema},
            }
        text = await self._complete(ctx, request)
        if output is None:
            return PromptRun(messages, text, text)
        checked = output.read(text)
        repaired = False
        if not checked.fits:
            repair = output.repair_messages(text, checked)
            request = {**request, "messages": [*request["messages"], *repair]}
            ctx.answer_headers = (*ctx.answer_headers, (b"x-tollway-repaired", b"1"))
            text = await self._complete(ctx, request)
            checked = output.read(text)
            repaired = True
        if not checked.fits:
            listed = "; ".join(checked.problems[:_MAX_LISTED])
            raise GatewayError(
                502,
                "The model's answer does not fit the API's output schema, even after a "
                f"repair: {listed}",
                code="invalid_output",
            )
        return PromptRun(messages, text, checked.value, repaired)

    async def stream(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        version: PromptVersion,
        variables: Mapping[str, Any],
    ) -> None:
        """A text answer as server-sent events: `delta` events as the model writes, then `done`
        (the whole text and the usage), or `error`. The call goes to the first deployment
        that opens its stream; once a byte went out, nothing is retried."""
        request: dict[str, Any] = {
            "model": version.model,
            "messages": version.template.render(variables),
            **version.parameters,
        }
        ctx.answer_headers = (
            *ctx.answer_headers,
            (b"x-tollway-prompt-version", b"%d" % version.number),
        )
        try:
            route = ctx.config.route(version.model)
            if route is None:
                raise GatewayError(
                    503, f"The prompt API's model `{version.model}` is not configured."
                )
            failure = "no deployment"
            for attempt in plan(self.balancers, ctx, route, Intake(version.model, True, True)):
                deployment = attempt.deployment
                provider = deployment.provider
                model = deployment.model or route.name
                ctx.deployment = deployment
                ctx.attempts += 1
                ctx.upstream_started_at = time.monotonic()
                call = provider.kind.adapter.chat_call(
                    {**request, "model": route.name}, model, True
                )
                head = TRANSLATIONS["chat"].head(
                    provider, call, model, ctx.request.request_id, True
                )
                try:
                    upstream = await open_stream(self.upstreams.pool(provider), head, call.body)
                except UpstreamError as exc:
                    failure = f"{provider.name}: {exc.message}"
                    continue
                ctx.status = upstream.status
                if upstream.status >= 300:
                    await upstream.read_all()  # read whole: the connection goes back to the pool
                    failure = f"{provider.name} answered {upstream.status}"
                    if upstream.status in _FINAL:
                        raise GatewayError(
                            502, f"The model could not answer: {failure}.", code="upstream_error"
                        )
                    continue
                translator = provider.kind.adapter.chat_stream(model, request)
                await relay_translated(
                    ctx,
                    conn,
                    upstream,
                    provider,
                    translator,
                    PromptEvents(translator, version),
                    served_headers(ctx),
                )
                ctx.status = 200
                return
            raise GatewayError(
                502, f"The model could not answer: {failure}.", code="upstream_error"
            )
        except asyncio.CancelledError:
            finish(ctx, "client_disconnect")
            raise
        except GatewayError as error:
            ctx.outcome = "refused" if ctx.attempts == 0 else "upstream_error"
            send_error(ctx, conn, error, served_headers(ctx))
        finally:
            finish(ctx)

    async def _complete(self, ctx: RequestContext, request: dict[str, Any]) -> str:
        """The text of the first deployment that answers (their usage added to the call's)."""
        model = str(request["model"])
        route = ctx.config.route(model)
        if route is None:
            raise GatewayError(503, f"The prompt API's model `{model}` is not configured.")
        attempts = plan(self.balancers, ctx, route, Intake(model, False, False))
        failure = "no deployment"
        for attempt in attempts:
            deployment = attempt.deployment
            ctx.deployment = deployment
            ctx.attempts += 1
            if not ctx.upstream_started_at:
                ctx.upstream_started_at = time.monotonic()
            try:
                result = await chat_once(
                    self.upstreams,
                    deployment,
                    {**request, "model": route.name},
                    ctx.request.request_id,
                )
            except ChatCallFailed as failed:
                ctx.status = failed.status
                failure = str(failed)
                if failed.status in _FINAL:
                    raise GatewayError(
                        502, f"The model could not answer: {failure}.", code="upstream_error"
                    ) from failed
                continue
            add_usage(ctx, result.get("usage"))
            try:
                content = result["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                content = None
            return content if isinstance(content, str) else ""
        raise GatewayError(502, f"The model could not answer: {failure}.", code="upstream_error")


class PromptEvents:
    """A streamed prompt API answer's events, from the canonical chunks."""

    __slots__ = ("text", "translator", "version")

    def __init__(self, translator: StreamTranslator, version: PromptVersion) -> None:
        self.translator = translator
        self.version = version
        self.text: list[str] = []

    def feed(self, chunk: dict[str, Any]) -> bytes:
        choices = chunk.get("choices") or []
        delta = (choices[0].get("delta") or {}).get("content") if choices else None
        if not delta:
            return b""
        self.text.append(delta)
        return b"event: delta\ndata: " + orjson.dumps({"text": delta}) + b"\n\n"

    def finish(self) -> bytes:
        done = {
            "text": "".join(self.text),
            "version": self.version.number,
            "usage": self.translator.usage,
        }
        return b"event: done\ndata: " + orjson.dumps(done) + b"\n\n"

    def error(self, status: int, message: str) -> bytes:
        failure = {
            "error": {
                "message": message,
                "type": "upstream_error",
                "code": "upstream_stream_interrupted",
            }
        }
        return b"event: error\ndata: " + orjson.dumps(failure) + b"\n\n"


def wants_stream(ctx: RequestContext) -> bool:
    """A REST call streams when it accepts server-sent events or says `?stream=true`."""
    accept = ctx.request.header(b"accept")
    return (accept is not None and b"text/event-stream" in accept) or (
        b"stream=true" in ctx.request.query
    )


def _no_stream() -> GatewayError:
    return GatewayError(
        400,
        "This API's answer is checked against its output schema before it goes out: it is not "
        "streamed (ask for application/json).",
        param="stream",
        code="invalid_value",
    )


def _bad_version() -> GatewayError:
    return GatewayError(
        400,
        f"{VERSION_HEADER.decode()} takes a version number.",
        param=VERSION_HEADER.decode(),
        code="invalid_value",
    )


def input_refusal(error: InputError, prefix: str = "") -> GatewayError:
    listed = "; ".join(f"{p.path}: {p.message}" for p in error.problems[:_MAX_LISTED])
    more = len(error.problems) - _MAX_LISTED
    if more > 0:
        listed += f" (and {more} more)"
    first = error.problems[0].path
    param = f"{prefix}{first[1:]}" if prefix and first.startswith("$") else first
    return GatewayError(
        400, f"The input does not fit this API: {listed}", param=param, code="invalid_input"
    )


def add_usage(ctx: RequestContext, usage: Any) -> None:
    """Adds an answer's usage to the call's (a repair's tokens are the call's too)."""
    if not isinstance(usage, dict):
        return
    total = ctx.usage
    if total is None:
        ctx.usage = dict(usage)
        return
    for name, value in usage.items():
        if isinstance(value, int) and isinstance(total.get(name, 0), int):
            total[name] = total.get(name, 0) + value
        elif isinstance(value, dict):
            inner = total.setdefault(name, {})
            if isinstance(inner, dict):
                for key, count in value.items():
                    if isinstance(count, int) and isinstance(inner.get(key, 0), int):
                        inner[key] = inner.get(key, 0) + count


def rest_answer(
    ctx: RequestContext, conn: HttpConnection, version: PromptVersion, value: Any, text: str
) -> None:
    """The REST answer: the output schema's value, or `{"text": ...}`."""
    body = orjson.dumps(value if version.output is not None else {"text": text})
    ctx.response_body = body
    conn.send_json(200, body, served_headers(ctx))
