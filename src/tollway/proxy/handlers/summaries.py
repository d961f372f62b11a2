"""Summaries of the turns a kept conversation leaves out to fit its model
(llm/context_fit.py), made by the model the configuration names for it and cached per owner.

A summary covers the left-out turns from the conversation's start (after the turns always
kept); it is keyed by a digest of what it covers. As a conversation grows, more turns are
left out: the summary of the longest part already summarised is taken up and only the turns
after it are sent with it, so each turn is summarised once. A summary that cannot be made
(the summary model fails) leaves the turns out without one: the call goes on.

A summary is a call of its own, made for the app of the call that needed it: it passes the
body phase of that call's chain (rate limits and budgets admit it, or refuse it and there is
no summary), and when it ends it is priced, settled and recorded like any call (a chat call
of the summary model, with the client's headers, `x-tollway-call: context-summary` added).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson

from tollway.config.snapshot import Deployment, RouteEntry
from tollway.conversations.stored import ConversationStore
from tollway.llm.client_apis import OPENAI_CHAT
from tollway.policies.base import Pending
from tollway.policies.context import RequestContext
from tollway.proxy.handlers.chat_once import ChatCallFailed, chat_once
from tollway.proxy.http import Request
from tollway.proxy.replies import finish
from tollway.proxy.upstream import Upstreams

log = logging.getLogger("tollway.proxy")

INSTRUCTIONS = (
    "You condense the earlier part of a conversation between a user and an assistant so that "
    "the assistant can go on without it. Keep every fact, decision, name, number, file and "
    "open question that later turns may need; drop pleasantries. Write plain prose, at most "
    "a few paragraphs, in the conversation's language."
)
SUMMARY_LEAD = "Summary of the earlier part of this conversation (made by the gateway):\n"


def digests(turns: list[list[dict[str, Any]]]) -> list[str]:
    """The digest of each prefix of `turns`: what a summary of that many turns covers."""
    out = []
    running = hashlib.sha256()
    for turn in turns:
        running.update(orjson.dumps(turn, option=orjson.OPT_SORT_KEYS))
        out.append(running.copy().hexdigest())
    return out


def transcript(turns: list[list[dict[str, Any]]]) -> str:
    lines = []
    for turn in turns:
        for item in turn:
            kind = item.get("type", "message")
            if kind == "message":
                content = item.get("content")
                text = (
                    content
                    if isinstance(content, str)
                    else "".join(
                        p.get("text") or p.get("refusal") or ""
                        for p in content or []
                        if isinstance(p, dict)
                    )
                )
                lines.append(f"{str(item.get('role', 'user')).capitalize()}: {text}")
            elif kind in ("function_call", "custom_tool_call"):
                given = item.get("arguments") or item.get("input") or ""
                lines.append(f"Assistant called {item.get('name')}: {given}")
            elif kind in ("function_call_output", "custom_tool_call_output"):
                output = item.get("output")
                text = output if isinstance(output, str) else orjson.dumps(output).decode()
                lines.append(f"Tool result: {text}")
    return "\n".join(lines)


class SummaryFailed(Exception):
    pass


class Summaries:
    """Makes and caches the summaries of one worker's kept conversations."""

    __slots__ = ("store", "upstreams")

    def __init__(self, upstreams: Upstreams, store: ConversationStore) -> None:
        self.upstreams = upstreams
        self.store = store

    async def summary(
        self,
        ctx: RequestContext,
        owner: str,
        model: str,
        dropped: list[list[dict[str, Any]]],
        max_tokens: int,
    ) -> tuple[str, bool]:
        """The summary of `dropped`, and whether it was cached (SummaryFailed when it cannot
        be made)."""
        covers = digests(dropped)
        known = await self.store.summaries(owner, covers)
        if covers[-1] in known:
            return known[covers[-1]], True
        start, before = 0, None
        for i in range(len(covers) - 2, -1, -1):
            if covers[i] in known:
                start, before = i + 1, known[covers[i]]
                break
        prompt = transcript(dropped[start:])
        if before is not None:
            prompt = f"Summary so far:\n{before}\n\nWhat followed:\n{prompt}"
        made = await self._ask(ctx, model, prompt, max_tokens)
        await self.store.keep_summary(owner, covers[-1], made)
        return made, False

    async def _ask(self, outer: RequestContext, model: str, prompt: str, max_tokens: int) -> str:
        route = outer.config.route(model)
        if route is None or outer.route is None:
            raise SummaryFailed(f"summary model {model!r} is not configured")
        request = {
            "model": model,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": prompt},
            ],
            "max_tokens": max_tokens,
        }
        ctx = _summary_call(outer, model, request)
        try:
            text = await self._metered(ctx, route.deployments[0], request)
        except BaseException:
            if not ctx.outcome:
                ctx.outcome = "upstream_error"
            raise
        finally:
            finish(ctx)
        return text

    async def _metered(
        self, ctx: RequestContext, deployment: Deployment, request: dict[str, Any]
    ) -> str:
        assert ctx.route is not None
        pipeline = ctx.route.pipeline
        if pipeline.body_phase:
            verdict = pipeline.body(ctx)
            if isinstance(verdict, Pending):
                verdict = await verdict.waiter
            if verdict is not None:
                ctx.outcome = "refused"
                raise SummaryFailed(f"refused by {ctx.refused_by}")
        ctx.deployment = deployment
        ctx.attempts = 1
        ctx.upstream_started_at = time.monotonic()
        try:
            result = await chat_once(self.upstreams, deployment, request, ctx.request.request_id)
            text = result["choices"][0]["message"]["content"]
        except ChatCallFailed as failed:
            ctx.status = failed.status
            raise SummaryFailed(str(failed)) from failed
        except (KeyError, IndexError, TypeError) as exc:
            raise SummaryFailed(f"{deployment.provider.name}: an answer without text") from exc
        ctx.status = 200
        usage = result.get("usage")
        ctx.usage = usage if isinstance(usage, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise SummaryFailed(f"{deployment.provider.name}: an empty summary")
        ctx.outcome = "completed"
        return text.strip()


def _summary_call(outer: RequestContext, model: str, request: dict[str, Any]) -> RequestContext:
    """The summary's own call: the outer call's key, service and chain, as a chat call."""
    assert outer.route is not None
    incoming = outer.request
    body = orjson.dumps(request)
    headers = [
        *[(k, v) for k, v in incoming.headers if k not in (b"content-length", b"x-tollway-call")],
        (b"x-tollway-call", b"context-summary"),
    ]
    summary_request = Request(
        "POST",
        "/v1/chat/completions",
        b"",
        headers,
        body,
        "1.1",
        True,
        incoming.request_id + b"-summary",
        incoming.client_address,
    )
    route = RouteEntry("model_call", outer.route.pipeline, OPENAI_CHAT, outer.route.service)
    ctx = RequestContext(summary_request, outer.config, route)
    ctx.key = outer.key
    ctx.service = outer.service
    ctx.model = model
    return ctx
