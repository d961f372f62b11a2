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
from typing import TYPE_CHECKING, Any

import orjson

from tollway.config.prompt_openapi import PromptApiEntry
from tollway.config.prompt_openapi import document as openapi_document
from tollway.errors import GatewayError
from tollway.llm.client_apis import Intake
from tollway.llm.prompt_template import InputError, InputProblem
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.balancer import Balancers
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.chat_once import ChatCallFailed, chat_once
from tollway.proxy.handlers.model_call import plan
from tollway.proxy.replies import finish, refuse, send_error, served_headers
from tollway.proxy.upstream import Upstreams

if TYPE_CHECKING:
    from tollway.config.prompt_service import PromptService, PromptVersion
    from tollway.config.snapshot import ServiceRuntime

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
        pipeline = route.pipeline
        if pipeline.body_phase:
            verdict = pipeline.body(ctx)
            if isinstance(verdict, Pending):
                return self._after(ctx, conn, verdict, version, variables)
            if verdict is not None:
                refuse(ctx, conn, verdict)
                return None
        return self.answer(ctx, conn, version, variables, rest_answer)

    async def _after(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        pending: Pending,
        version: PromptVersion,
        variables: dict[str, Any],
    ) -> None:
        try:
            verdict = await pending.waiter
        except BaseException:
            finish(ctx, "client_disconnect")
            raise
        if verdict is not None:
            refuse(ctx, conn, verdict)
            return
        await self.answer(ctx, conn, version, variables, rest_answer)

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


def _bad_version() -> GatewayError:
    return GatewayError(
        400,
        f"{VERSION_HEADER.decode()} takes a version number.",
        param=VERSION_HEADER.decode(),
        code="invalid_value",
    )


def find(ctx: RequestContext, model: str) -> ServiceRuntime | None:
    """The prompt service a key outside the store calls as `prompt:NAME`."""
    tenancy = ctx.config.tenancy
    if tenancy is None:
        return None
    for service_id in tenancy.model_services.get(model, ()):
        service = tenancy.services[service_id]
        if service.prompt is not None:
            return service
    return None


def chat_variables(body: Any, prompt: PromptService) -> Any:
    if not isinstance(body, dict):
        raise InputError([InputProblem("$", "the request is a JSON object")])
    given = body.get("variables")
    if given is not None:
        return given
    last = None
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            last = message.get("content")
            break
    if isinstance(last, list):
        last = "".join(p.get("text", "") for p in last if isinstance(p, dict))
    if not isinstance(last, str):
        raise InputError(
            [InputProblem("variables", "give the variables, or a user message that holds them")]
        )
    try:
        parsed = orjson.loads(last)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    # Plain text fits an input of one string property: chat clients can send just that.
    properties = prompt.primary.template.input_schema.get("properties") or {}
    strings = [
        n for n, s in properties.items() if isinstance(s, dict) and s.get("type") == "string"
    ]
    if len(properties) == 1 and strings:
        return {strings[0]: last}
    raise InputError(
        [
            InputProblem(
                "variables",
                "give the variables (`variables`, or a user message holding them as a JSON object)",
            )
        ]
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


def chat_answer(intake: Intake) -> Answer:
    """The chat completions answer (a stream of it, when the call streams: whole, since the
    answer is checked before any of it goes out)."""

    def reply(
        ctx: RequestContext, conn: HttpConnection, version: PromptVersion, value: Any, text: str
    ) -> None:
        content = text if version.output is None else orjson.dumps(value).decode()
        created = int(time.time())
        ident = "chatcmpl-" + ctx.request.request_id.decode("latin-1")
        usage = ctx.usage or {}
        if intake.stream:
            chunks: list[dict[str, Any]] = [
                {"delta": {"role": "assistant", "content": content}, "finish_reason": None},
                {"delta": {}, "finish_reason": "stop"},
            ]
            events = [
                b"data: "
                + orjson.dumps(
                    {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": intake.model,
                        "choices": [{"index": 0, **chunk}],
                    }
                )
                + b"\n\n"
                for chunk in chunks
            ]
            if intake.include_usage:
                events.append(
                    b"data: "
                    + orjson.dumps(
                        {
                            "id": ident,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": intake.model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + b"\n\n"
                )
            events.append(b"data: [DONE]\n\n")
            conn.send(
                200,
                [(b"content-type", b"text/event-stream; charset=utf-8"), *served_headers(ctx)],
                b"".join(events),
            )
            return
        answer = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": intake.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        body = orjson.dumps(answer)
        ctx.response_body = body
        conn.send_json(200, body, served_headers(ctx))

    return reply
