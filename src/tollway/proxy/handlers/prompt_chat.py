"""Prompt APIs through the chat completions API: the model `prompt:NAME` (or
`prompt:TEAM/NAME`), its variables in the request's `variables` or in its last user message,
answered as a chat completion (or a stream of one) whose content is the API's output."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from tollway.llm.client_apis import Intake
from tollway.llm.prompt_template import InputError, InputProblem
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.replies import served_headers

if TYPE_CHECKING:
    from tollway.config.prompt_service import PromptService, PromptVersion
    from tollway.config.snapshot import ServiceRuntime
    from tollway.proxy.handlers.prompt_api import Answer


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
