"""The Responses API's state, kept by the gateway where the model's provider has no Responses
API of its own (a provider that has one keeps its own: those calls pass through, and the
gateway keeps only whose each response is: proxy/handlers/upstream_responses.py).

- `POST /v1/responses` with `store` (the API's default) keeps the response: its input (the
  whole conversation up to it) is written, in progress, before the model is called, and the
  Response object when the call ends. With `previous_response_id`, the conversation kept for
  that response comes first in the input, so a client sends only what is new.
- `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`.

Every stored response belongs to the app whose key made it (or to the key, for a key outside
the store): another app's id is answered as unknown. The store is read and written in its own
thread (conversations/sqlite_store.py), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

import orjson

from tollway.config.snapshot import ModelRoute
from tollway.conversations.stored import (
    ConversationConflict,
    ConversationNotFound,
    ConversationStore,
    ResponseStore,
    StoredResponse,
)
from tollway.errors import GatewayError
from tollway.llm import tokens
from tollway.llm.client_apis import ClientApi
from tollway.llm.context_fit import ContextFit, fit
from tollway.llm.responses_output import ResponseRef, new_id
from tollway.llm.responses_request import input_items
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.model_call import ModelCalls
from tollway.proxy.handlers.summaries import SUMMARY_LEAD, Summaries, SummaryFailed
from tollway.proxy.handlers.upstream_responses import at_provider, keep_owner
from tollway.proxy.replies import finish, refuse

log = logging.getLogger("tollway.proxy")

_PREFIX = "/v1/responses/"
# How long a call that follows a response waits for that response's end to be written (it
# is written just after its answer went out: a client that asks again at once may be first).
_PREVIOUS_WAIT_S = 2.0
_POLL_S = 0.02


def owner_of(ctx: RequestContext) -> str:
    """Whose stored responses a call sees: its key's app, or the key outside the store."""
    key = ctx.key
    if key is None:
        return "-"
    if key.app is not None:
        return f"app:{key.app.id}"
    return f"key:{key.name}"


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(404, f"Response with id '{response_id}' not found.")


def fitting_of(ctx: RequestContext, model_route: ModelRoute) -> ContextFit:
    """How a kept conversation is fitted to the model: as the service the call came through
    says for it, or as the model's own settings say."""
    service = ctx.route.service if ctx.route is not None else None
    if service is not None:
        found = service.context.get(model_route.name)
        if found is not None:
            return found
    return model_route.context


def previous_not_found(response_id: str) -> GatewayError:
    return GatewayError(
        400,
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


class StoredResponses:
    """The worker's Responses handlers, over its model-call handler and the response store."""

    __slots__ = ("calls", "conversations", "pending", "store", "summaries")

    def __init__(
        self,
        calls: ModelCalls,
        store: ResponseStore | None,
        conversations: ConversationStore | None = None,
    ) -> None:
        self.calls = calls
        self.store = store
        self.conversations = conversations
        self.summaries = (
            Summaries(calls.upstreams, conversations) if conversations is not None else None
        )
        # Writes of responses that have ended, in flight (kept so that none is collected).
        self.pending: set[asyncio.Task[None]] = set()

    # -- POST /v1/responses -----------------------------------------------------------------

    def create(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        store = self.store
        route = ctx.route
        if store is None or route is None or route.api is None:
            return self.calls.handle(ctx, conn)
        try:
            request = orjson.loads(ctx.request.body)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            return self.calls.handle(ctx, conn)  # which answers what is wrong with the body
        model = request.get("model")
        model_route = ctx.config.route(model) if isinstance(model, str) else None
        if model_route is None:
            return self.calls.handle(ctx, conn)
        previous = request.get("previous_response_id")
        keep = request.get("store") is not False
        conversation = request.get("conversation")
        if conversation is None and _served_natively(model_route, route.api):
            # The provider keeps its responses; the gateway, whose they are.
            if isinstance(previous, str) and previous:
                return self._continue_upstream(ctx, conn, store, request, previous, model_route)
            if keep:
                keep_owner(ctx, store, owner_of(ctx))
            return self.calls.handle(ctx, conn)
        if previous is None and conversation is None and not keep:
            return self.calls.handle(ctx, conn)
        try:
            conversation_id = self._conversation_id(conversation, previous)
        except GatewayError as error:
            refuse(ctx, conn, error)
            return None
        if previous is not None and (not isinstance(previous, str) or not previous):
            refuse(
                ctx,
                conn,
                GatewayError(
                    400,
                    "'previous_response_id' must be a response id.",
                    param="previous_response_id",
                    code="invalid_value",
                ),
            )
            return None
        ref = ResponseRef(new_id("resp_"), previous, keep, conversation_id)
        return self._stateful(ctx, conn, store, request, ref, model_route)

    async def _continue_upstream(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        store: ResponseStore,
        request: dict[str, Any],
        previous: str,
        model_route: ModelRoute,
    ) -> None:
        """A call on a model whose provider keeps responses, continuing `previous`: made at
        the provider that keeps it, or, when the gateway keeps it (it was made on a model of
        another provider), as any call continuing a kept response."""
        owner = owner_of(ctx)
        try:
            found = await store.get(owner, previous)
            if found is None:
                raise previous_not_found(previous)
        except asyncio.CancelledError:
            finish(ctx, "client_disconnect")
            raise
        except Exception as failure:
            refuse(ctx, conn, state_error(failure))
            return
        keep = request.get("store") is not False
        if found.kept_by is None:
            ref = ResponseRef(new_id("resp_"), previous, keep, None)
            await self._stateful(ctx, conn, store, request, ref, model_route)
            return
        ctx.sticky_provider = found.kept_by
        if keep:
            keep_owner(ctx, store, owner)
        work = self.calls.handle(ctx, conn)
        if work is not None:
            await work

    def _conversation_id(self, conversation: Any, previous: Any) -> str | None:
        if conversation is None:
            return None
        if previous is not None:
            raise GatewayError(
                400,
                "Give either 'previous_response_id' or 'conversation', not both.",
                param="conversation",
                code="invalid_value",
            )
        found = conversation.get("id") if isinstance(conversation, dict) else conversation
        if not isinstance(found, str) or not found:
            raise GatewayError(
                400,
                "'conversation' must be a conversation id, or an object with its 'id'.",
                param="conversation",
                code="invalid_value",
            )
        if self.conversations is None:
            raise conversation_not_found(found, "conversation")
        return found

    async def _stateful(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        store: ResponseStore,
        request: dict[str, Any],
        ref: ResponseRef,
        model_route: ModelRoute,
    ) -> None:
        owner = owner_of(ctx)
        try:
            items = input_items(request.get("input"), new_id)
            history: list[dict[str, Any]] = []
            expect = if_match(ctx)
            if ref.previous is not None:
                before = await self._ended(store, owner, ref.previous)
                history = [*before.input, *before.output]
            elif ref.conversation is not None:
                assert self.conversations is not None
                current, history = await self.conversations.conversation_items(
                    owner, ref.conversation
                )
                expect = current.version if expect is None else expect
            everything = [*history, *items]
            sent = everything
            setting = fitting_of(ctx, model_route)
            if history and setting.max_input_tokens is not None:
                sent = await self._fit(ctx, owner, ref, model_route, setting, everything)
            if history:
                sent = cache_breakpoint(sent, len(sent) - len(items))
            if ref.conversation is not None:
                assert self.conversations is not None
                # The new input joins the conversation now, on the version it was read at,
                # and holds it until the answer.
                await self.conversations.append(
                    owner, ref.conversation, items, expect, turn=ref.response_id
                )
            if ref.stored:
                try:
                    await store.begin(owner, ref.response_id, everything, time.time())
                except BaseException:
                    self._release(owner, ref)
                    raise
        except asyncio.CancelledError:
            finish(ctx, "client_disconnect")
            raise
        except Exception as failure:
            refuse(ctx, conn, state_error(failure, ref.conversation or "", "conversation"))
            return
        ctx.response_ref = ref
        self._settle_with(ctx, store, owner, ref)
        # The model is called with the whole conversation, as a stateless request.
        request = {
            k: v for k, v in request.items() if k not in ("previous_response_id", "conversation")
        }
        request["input"] = sent
        ctx.request.body = orjson.dumps(request)
        work = self.calls.handle(ctx, conn)
        if work is not None:
            await work

    async def _fit(
        self,
        ctx: RequestContext,
        owner: str,
        ref: ResponseRef,
        model_route: ModelRoute,
        setting: ContextFit,
        everything: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The kept conversation fitted to the model's input budget (counted in a thread: a
        long conversation takes long enough to matter to every other call here), with a
        summary of what it left out where the model has a summary model."""
        deployment = model_route.deployments[0]
        counter = tokens.counter_for(deployment.model or model_route.name)
        fitted = await asyncio.to_thread(fit, everything, setting, counter.chat)
        if not fitted.omitted:
            return fitted.items
        ref.omitted = fitted.omitted
        ref.saved = (fitted.tokens, fitted.full)
        ctx.saved_tokens = fitted.full - fitted.tokens
        ref.selection = setting.select
        headers = [
            (b"x-tollway-context-omitted-items", b"%d" % len(fitted.omitted)),
            (b"x-tollway-context-tokens", b"%d/%d" % (fitted.tokens, fitted.full)),
        ]
        items = fitted.items
        if setting.summary_model is not None and self.summaries is not None:
            try:
                text, cached = await self.summaries.summary(
                    ctx, owner, setting.summary_model, fitted.dropped, setting.summary_tokens
                )
            except SummaryFailed as failure:
                log.warning("no summary of a kept conversation: %s", failure)
                headers.append((b"x-tollway-context-summary", b"failed"))
            else:
                note = {
                    "id": new_id("msg_"),
                    "type": "message",
                    "role": "developer",
                    "content": [{"type": "input_text", "text": SUMMARY_LEAD + text}],
                }
                items = [*items[: fitted.gap_at], note, *items[fitted.gap_at :]]
                ref.summary = {"model": setting.summary_model, "cached": cached}
                headers.append((b"x-tollway-context-summary", b"cached" if cached else b"made"))
        ctx.answer_headers = (*ctx.answer_headers, *headers)
        return items

    async def _ended(self, store: ResponseStore, owner: str, response_id: str) -> StoredResponse:
        deadline = time.monotonic() + _PREVIOUS_WAIT_S
        while True:
            found = await store.get(owner, response_id)
            if found is None:
                raise previous_not_found(response_id)
            if found.kept_by is not None:
                raise GatewayError(
                    400,
                    f"Previous response with id '{response_id}' is kept by provider "
                    f"'{found.kept_by}': continue it on a model that provider serves, or send "
                    "the whole conversation as input.",
                    param="previous_response_id",
                    code="invalid_value",
                )
            if found.status != "in_progress":
                return found
            if time.monotonic() > deadline:
                raise GatewayError(
                    400,
                    f"Previous response with id '{response_id}' is still in progress.",
                    param="previous_response_id",
                    code="previous_response_in_progress",
                )
            await asyncio.sleep(_POLL_S)

    def _settle_with(
        self, ctx: RequestContext, store: ResponseStore, owner: str, ref: ResponseRef
    ) -> None:
        """The call's state is written once: before its answer's last bytes go out (so that
        the client's next call finds it), or, for a call that ended any other way, when its
        account closes."""
        settled = False

        async def before_answer() -> None:
            nonlocal settled
            if not settled:
                settled = True
                await asyncio.gather(*self._writes(store, owner, ref, ctx))

        def on_finish(done: RequestContext) -> None:
            nonlocal settled
            if not settled:
                settled = True
                for write in self._writes(store, owner, ref, done):
                    task = asyncio.ensure_future(write)
                    self.pending.add(task)
                    task.add_done_callback(self._written)

        ctx.before_answer = before_answer
        ctx.on_finish = on_finish

    def _writes(
        self, store: ResponseStore, owner: str, ref: ResponseRef, ctx: RequestContext
    ) -> list[Awaitable[None]]:
        """The stored response gets the Response object the call ended with (one that never
        got one, or whose stream broke off, ends failed); the conversation its output."""
        final = ref.final
        if final is None or final.get("status") == "in_progress":
            final = {
                **(final or {"id": ref.response_id, "object": "response", "output": []}),
                "status": "failed",
                "error": {
                    "code": ctx.error_code or "server_error",
                    "message": f"The response did not complete ({ctx.outcome}).",
                },
            }
        writes: list[Awaitable[None]] = []
        if ref.stored:
            writes.append(store.complete(owner, ref.response_id, final))
        if ref.conversation is not None and self.conversations is not None:
            ended = final.get("status") in ("completed", "incomplete")
            output = final.get("output") if ended else None
            writes.append(
                self.conversations.end_turn(
                    owner, ref.conversation, ref.response_id, list(output or [])
                )
            )
        return writes

    def _release(self, owner: str, ref: ResponseRef) -> None:
        """A turn that will not be made: its conversation is open to writes again."""
        if ref.conversation is not None and self.conversations is not None:
            task = asyncio.ensure_future(
                self.conversations.end_turn(owner, ref.conversation, ref.response_id, [])
            )
            self.pending.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a stored response could not be completed", exc_info=task.exception())

    # -- GET and DELETE /v1/responses/{id}[/input_items] --------------------------------------

    def stored(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        route = ctx.route
        assert route is not None and route.api is not None
        path = ctx.request.path
        rest = path[path.find(_PREFIX) + len(_PREFIX) :]
        response_id, _, tail = rest.partition("/")
        method = ctx.request.method
        if not response_id or (tail and (tail != "input_items" or method != "GET")):
            refuse(ctx, conn, GatewayError(404, f"Invalid URL ({method} {path})."))
            return None
        if self.store is None:
            refuse(ctx, conn, _not_found(response_id))
            return None
        return self._stored(ctx, conn, route.api, self.store, response_id, tail, method)

    async def _stored(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        api: ClientApi,
        store: ResponseStore,
        response_id: str,
        tail: str,
        method: str,
    ) -> None:
        owner = owner_of(ctx)
        status = 200
        try:
            found = await store.get(owner, response_id)
            if found is None:
                raise _not_found(response_id)
            if found.kept_by is not None:
                status, body = await at_provider(
                    ctx, self.calls.upstreams, found.kept_by, method, response_id, tail
                )
                if method == "DELETE" and status < 300:
                    await store.delete(owner, response_id)
            elif method == "DELETE":
                if not await store.delete(owner, response_id):
                    raise _not_found(response_id)
                body = orjson.dumps({"id": response_id, "object": "response", "deleted": True})
            else:
                body = orjson.dumps(
                    item_page(found.input, ctx.request.query)
                    if tail
                    else found.response or _in_progress(found)
                )
        except asyncio.CancelledError:
            finish(ctx, "client_disconnect")
            raise
        except Exception as failure:
            refuse(ctx, conn, state_error(failure))
            return
        ctx.status = status
        ctx.outcome = "completed" if status < 400 else "upstream_error"
        conn.send_json(status, body)
        finish(ctx)


def cache_breakpoint(items: list[dict[str, Any]], history: int) -> list[dict[str, Any]]:
    """The kept history's last user message marked as the end of a prompt-cache prefix
    (`cache_control`, honoured where the provider caches explicitly: Anthropic, Bedrock;
    dropped elsewhere), so that the next turn, which repeats that history, reads it from the
    provider's cache. A copy: the stored items are not changed."""
    for index in range(history - 1, -1, -1):
        item = items[index]
        content = item.get("content")
        if item.get("type", "message") != "message" or item.get("role") != "user":
            continue
        if not isinstance(content, list) or not content or not isinstance(content[-1], dict):
            return items
        if content[-1].get("type") not in ("input_text", "text"):
            return items
        marked = {**content[-1], "cache_control": {"type": "ephemeral"}}
        return [*items[:index], {**item, "content": [*content[:-1], marked]}, *items[index + 1 :]]
    return items


def if_match(ctx: RequestContext) -> int | None:
    """The conversation version a write extends (`If-Match: "3"`), if it says."""
    raw = ctx.request.header(b"if-match")
    if raw is None:
        return None
    text = raw.decode("latin-1").strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise GatewayError(
            400,
            "If-Match must be a conversation's version, as its ETag gives it.",
            code="invalid_value",
        )
    return int(text)


def state_error(
    failure: Exception, conversation_id: str = "", param: str | None = None
) -> GatewayError:
    """The answer for a step of the kept state that failed: a refusal as it is, a missing
    conversation (or item of it), a conflict, or the store itself failing (logged, 503)."""
    if isinstance(failure, GatewayError):
        return failure
    if isinstance(failure, ConversationNotFound):
        missing = str(failure)
        if missing and missing != conversation_id:
            return GatewayError(404, f"Item with id '{missing}' not found.")
        return conversation_not_found(conversation_id, param)
    if isinstance(failure, ConversationConflict):
        return conversation_conflict(failure)
    log.error("the state store failed", exc_info=failure)
    return GatewayError(503, "Stored responses and conversations are unavailable right now.")


def conversation_not_found(conversation_id: str, param: str | None = None) -> GatewayError:
    return GatewayError(404, f"Conversation with id '{conversation_id}' not found.", param=param)


def conversation_conflict(conflict: ConversationConflict) -> GatewayError:
    return GatewayError(
        409,
        str(conflict),
        code="conversation_conflict",
        headers=((b"etag", b'"%d"' % conflict.current.version),),
    )


def _served_natively(route: ModelRoute, api: ClientApi) -> bool:
    return all(d.provider.serves(api) for d in route.deployments)


def _in_progress(found: StoredResponse) -> dict[str, Any]:
    return {
        "id": found.id,
        "object": "response",
        "created_at": int(found.created_at),
        "status": "in_progress",
        "output": [],
    }


def item_page(items: list[dict[str, Any]], query: bytes) -> dict[str, Any]:
    """A page of a response's input items, as the API lists them: newest first unless
    `order=asc`, `limit` (1-100, 20 by default) items after the `after` item."""
    params = parse_qs(query.decode("latin-1"))
    order = (params.get("order") or ["desc"])[0]
    if order not in ("asc", "desc"):
        raise GatewayError(400, "order must be 'asc' or 'desc'.", param="order")
    try:
        limit = int((params.get("limit") or ["20"])[0])
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise GatewayError(400, "limit must be an integer from 1 to 100.", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = params.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        if after[0] not in ids:
            raise GatewayError(400, f"No item with id '{after[0]}' in this list.", param="after")
        ordered = ordered[ids.index(after[0]) + 1 :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }
