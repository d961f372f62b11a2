"""The Conversations API, kept by the gateway: `/v1/conversations` and their items, in
OpenAI's shapes (the `openai` SDK's `conversations` client works), each owned by the app
whose key made it. Responses made with `conversation` add to them (proxy/handlers/responses.py).

What Tollway adds: every conversation has a version, counted by its writes, given in its
`version` field and as its ETag. A write (new items, metadata, an item deleted, a response
made in it) may state the version it extends with `If-Match`; if another write came first it
gets 409 `conversation_conflict` (with the current version as ETag), so two clients never
interleave silently. While a response is being made in a conversation, other writes get 409
too. `POST /v1/conversations/{id}/fork` with `{"item_id": ...}` makes a new conversation of
the items up to that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from tollway.conversations.stored import (
    Conversation,
    ConversationNotFound,
    ConversationStore,
)
from tollway.errors import GatewayError
from tollway.llm.responses_output import new_id
from tollway.llm.responses_request import input_items
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.handlers.responses import if_match, item_page, owner_of, state_error
from tollway.proxy.replies import finish, refuse

_PREFIX = "/v1/conversations"
# As OpenAI's API bounds them.
_MAX_ITEMS_AT_ONCE = 20
_MAX_METADATA = 16


def _invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_value")


def _metadata(body: dict[str, Any]) -> dict[str, str] | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or len(metadata) > _MAX_METADATA
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise _invalid(
            f"metadata must be an object of at most {_MAX_METADATA} string values.", "metadata"
        )
    return metadata


def _new_items(body: dict[str, Any], required: bool) -> list[dict[str, Any]]:
    items = body.get("items")
    if items is None and not required:
        return []
    if not isinstance(items, list) or (required and not items):
        raise _invalid("items must be a non-empty array of items.", "items")
    if len(items) > _MAX_ITEMS_AT_ONCE:
        raise _invalid(f"At most {_MAX_ITEMS_AT_ONCE} items can be added at once.", "items")
    try:
        return input_items(items, new_id)
    except GatewayError as error:
        raise _invalid(error.message.replace("input", "items"), "items") from None


class Conversations:
    """The worker's Conversations API handler."""

    __slots__ = ("store",)

    def __init__(self, store: ConversationStore | None) -> None:
        self.store = store

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        request = ctx.request
        path = request.path
        rest = path[path.find(_PREFIX) + len(_PREFIX) :].strip("/")
        parts = rest.split("/") if rest else []
        if self.store is None:
            refuse(ctx, conn, GatewayError(404, "Conversations are not kept by this gateway."))
            return None
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                parsed = orjson.loads(request.body or b"{}")
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                refuse(ctx, conn, _invalid("The body must be a JSON object."))
                return None
            body = parsed
        return self._answer(ctx, conn, self.store, request.method, parts, body)

    async def _answer(
        self,
        ctx: RequestContext,
        conn: HttpConnection,
        store: ConversationStore,
        method: str,
        parts: list[str],
        body: dict[str, Any],
    ) -> None:
        owner = owner_of(ctx)
        conversation_id = parts[0] if parts else ""
        try:
            status, answer, version = await self._route(store, owner, method, parts, body, ctx)
        except asyncio.CancelledError:
            finish(ctx, "client_disconnect")
            raise
        except Exception as failure:
            refuse(ctx, conn, state_error(failure, conversation_id))
            return
        ctx.status = status
        ctx.outcome = "completed"
        headers = [(b"etag", b'"%d"' % version)] if version is not None else None
        conn.send_json(status, orjson.dumps(answer), headers)
        finish(ctx)

    async def _route(
        self,
        store: ConversationStore,
        owner: str,
        method: str,
        parts: list[str],
        body: dict[str, Any],
        ctx: RequestContext,
    ) -> tuple[int, Any, int | None]:
        """(status, answer, the conversation's version for the ETag)."""
        if not parts:
            if method != "POST":
                raise GatewayError(405, "Use POST to create a conversation.")
            created = await store.create_conversation(
                owner,
                new_id("conv_"),
                _metadata(body) or {},
                _new_items(body, required=False),
                time.time(),
            )
            return 200, created.as_json(), created.version
        conversation_id = parts[0]
        if len(parts) == 1:
            return await self._conversation(store, owner, conversation_id, method, body, ctx)
        if parts[1] == "fork" and len(parts) == 2 and method == "POST":
            item_id = body.get("item_id")
            if not isinstance(item_id, str) or not item_id:
                raise _invalid("item_id: the last item the fork keeps.", "item_id")
            forked = await store.fork(owner, conversation_id, item_id, new_id("conv_"), time.time())
            return 200, forked.as_json(), forked.version
        if parts[1] != "items" or len(parts) > 3:
            raise GatewayError(404, f"Invalid URL ({method} {ctx.request.path}).")
        if len(parts) == 3:
            return await self._item(store, owner, conversation_id, parts[2], method, ctx)
        if method == "GET":
            current, items = await store.conversation_items(owner, conversation_id)
            return 200, item_page(items, ctx.request.query), current.version
        if method == "POST":
            added = _new_items(body, required=True)
            current = await store.append(owner, conversation_id, added, if_match(ctx))
            page = {
                "object": "list",
                "data": added,
                "first_id": added[0]["id"],
                "last_id": added[-1]["id"],
                "has_more": False,
            }
            return 200, page, current.version
        raise GatewayError(405, "Use GET or POST on a conversation's items.")

    async def _conversation(
        self,
        store: ConversationStore,
        owner: str,
        conversation_id: str,
        method: str,
        body: dict[str, Any],
        ctx: RequestContext,
    ) -> tuple[int, Any, int | None]:
        if method == "GET":
            found = await store.conversation(owner, conversation_id)
            if found is None:
                raise ConversationNotFound(conversation_id)
            return 200, found.as_json(), found.version
        if method == "POST":
            metadata = _metadata(body)
            if metadata is None:
                raise _invalid("metadata is required.", "metadata")
            updated = await store.update_conversation(
                owner, conversation_id, metadata, if_match(ctx)
            )
            return 200, updated.as_json(), updated.version
        if not await store.delete_conversation(owner, conversation_id):
            raise ConversationNotFound(conversation_id)
        deleted = {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
        return 200, deleted, None

    async def _item(
        self,
        store: ConversationStore,
        owner: str,
        conversation_id: str,
        item_id: str,
        method: str,
        ctx: RequestContext,
    ) -> tuple[int, Any, int | None]:
        if method == "DELETE":
            current: Conversation = await store.delete_item(
                owner, conversation_id, item_id, if_match(ctx)
            )
            return 200, current.as_json(), current.version
        if method != "GET":
            raise GatewayError(405, "Use GET or DELETE on a conversation item.")
        current, items = await store.conversation_items(owner, conversation_id)
        for item in items:
            if item.get("id") == item_id:
                return 200, item, current.version
        raise ConversationNotFound(item_id)
