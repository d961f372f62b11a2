"""OpenAI's Responses API as a client-facing format, the answer half: a canonical
chat.completion as a Response object, and canonical stream chunks as the Responses stream's
typed events, in the order clients rely on, each with its sequence number:

    response.created, response.in_progress,
    for each output item: response.output_item.added,
        reasoning: response.reasoning_text.delta ... .done
        message: response.content_part.added, response.output_text.delta ... .done,
                 response.content_part.done
        function call: response.function_call_arguments.delta ... .done
        custom tool call: response.custom_tool_call_input.delta ... .done
      response.output_item.done,
    response.completed (or response.incomplete, with the reason; or an `error` event then
    response.failed when the upstream fails mid-stream).

The request's own settings (instructions, tools, tool_choice, text format, reasoning, ...)
are echoed in the Response object as the Responses API does. The request half, and the rules
for what has no exact counterpart, are in llm/responses_request.py.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from tollway.llm.responses_request import SIGNATURE_PREFIX
from tollway.llm.responses_tools import CUSTOM_INPUT, TOOL_SEARCH, ClientTool, tool_names

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Where a Responses call the gateway keeps finds its ResponseRef in the client's request (as
# the data plane hands it to the answer's makers: an object, which no client can send).
REF_KEY = "__tollway_response"


class ResponseRef:
    """A Responses call the gateway stores (proxy/handlers/responses.py): the id it gave the
    response, the one it follows, and the Response object once made, for the store."""

    __slots__ = (
        "conversation",
        "final",
        "omitted",
        "previous",
        "response_id",
        "saved",
        "selection",
        "stored",
        "summary",
    )

    def __init__(
        self,
        response_id: str,
        previous: str | None,
        stored: bool = True,
        conversation: str | None = None,
    ) -> None:
        self.response_id = response_id
        self.previous = previous
        self.stored = stored
        self.conversation = conversation
        self.final: dict[str, Any] | None = None
        # The kept conversation's items left out to fit the model (llm/context_fit.py).
        self.omitted: list[str] = []
        # The summary that took their place: {"model": ..., "cached": ...}.
        self.summary: dict[str, Any] | None = None
        # The fitted conversation's tokens, and the whole conversation's (estimates).
        self.saved: tuple[int, int] | None = None
        # Which earlier turns were kept: "recent" or "relevant".
        self.selection = "recent"


def _ref(request: dict[str, Any]) -> ResponseRef | None:
    ref = request.get(REF_KEY)
    return ref if isinstance(ref, ResponseRef) else None


def new_id(prefix: str) -> str:
    return prefix + os.urandom(16).hex()


def error_event(code: str, message: str) -> dict[str, Any]:
    """An `error` event's fields. Beside the Responses API's own (code, message, param), an
    `error` object: the `openai` SDKs raise an APIError on an event that carries one, so a
    failure mid-stream stops the caller instead of leaving it with a truncated answer."""
    kind = "rate_limit_error" if code == "rate_limit_exceeded" else "server_error"
    return {
        "code": code,
        "message": message,
        "param": None,
        "error": {"type": kind, "code": code, "message": message, "param": None},
    }


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Canonical usage in the Responses API's shape (input_tokens include cached ones)."""
    usage = usage or {}
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
            "cache_write_tokens": usage.get("cache_creation_input_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get(
                "reasoning_tokens"
            )
            or 0
        },
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def envelope(response_id: str, request: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    """A Response object before its output: the request's settings, as the API echoes them
    (a stored one's id and predecessor are the gateway's)."""
    ref = _ref(request)
    if ref is not None:
        response_id = ref.response_id
    text = request.get("text")
    text = text if isinstance(text, dict) else {}
    reasoning = request.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
        "previous_response_id": ref.previous if ref is not None else None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": ref is not None and ref.stored,
        "temperature": request.get("temperature"),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
        "conversation": {"id": ref.conversation} if ref is not None and ref.conversation else None,
    } | (_context(ref) if ref is not None and ref.omitted else {})


def _context(ref: ResponseRef) -> dict[str, Any]:
    """Tollway's own field: what of the kept conversation the model did not get."""
    context: dict[str, Any] = {
        "strategy": "window",
        "kept": ref.selection,
        "omitted_items": ref.omitted,
    }
    if ref.saved is not None:
        sent, full = ref.saved
        context["input_tokens_estimate"] = sent
        context["history_tokens_estimate"] = full
    if ref.summary is not None:
        context["strategy"] = "summary"
        context["summary"] = ref.summary
    return {"context": context}


def _finished(response: dict[str, Any], finish: str | None, usage: dict[str, Any] | None) -> None:
    reason = _INCOMPLETE.get(finish or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = usage_of(usage)


def _reasoning_item(item_id: str, text: str, signature: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }
    if signature:
        item["encrypted_content"] = SIGNATURE_PREFIX + signature
    return item


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content if text or status == "completed" else [],
    }


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, tools: dict[str, ClientTool]
) -> dict[str, Any]:
    """A canonical tool call as the client's item: a function call, or a custom tool's call
    with its text input (see llm/responses_request.py)."""
    tool = tools.get(name)
    item: dict[str, Any]
    if tool is not None and tool.kind == TOOL_SEARCH:
        try:
            parsed = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            parsed = {}
        item = {
            "id": item_id,
            "type": "tool_search_call",
            "call_id": call_id,
            "arguments": parsed if isinstance(parsed, dict) else {},
            "execution": "client",
            "status": "completed",
        }
    elif tool is not None and tool.kind == "custom":
        item = {
            "id": item_id,
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": tool.name,
            "input": _custom_input(arguments),
            "status": "completed",
        }
    else:
        item = {
            "id": item_id,
            "type": "function_call",
            "call_id": call_id,
            "name": tool.name if tool is not None else name,
            "arguments": arguments,
            "status": "completed",
        }
    if tool is not None and tool.namespace:
        item["namespace"] = tool.namespace
    return item


def _custom_input(arguments: str) -> str:
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    value = parsed.get(CUSTOM_INPUT) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else arguments


def to_response(completion: dict[str, Any], request: dict[str, Any], model: str) -> dict[str, Any]:
    """A canonical chat.completion as a Response object."""
    response = envelope(
        new_id("resp_"), request, completion.get("model") or model, int(time.time())
    )
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output = response["output"]
    reasoning = message.get("reasoning_content") or ""
    blocks = message.get("thinking_blocks") or []
    if blocks:
        for block in blocks:
            output.append(
                _reasoning_item(new_id("rs_"), block.get("thinking") or "", block.get("signature"))
            )
    elif reasoning:
        output.append(_reasoning_item(new_id("rs_"), reasoning, None))
    if message.get("content"):
        output.append(_message_item(new_id("msg_"), message["content"]))
    elif message.get("refusal"):
        output.append(
            {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "refusal", "refusal": message["refusal"]}],
            }
        )
    tools = tool_names(request)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            _call_item(
                new_id("fc_"),
                call.get("id") or new_id("call_"),
                function.get("name") or "",
                function.get("arguments") or "",
                tools,
            )
        )
    _finished(response, choice.get("finish_reason"), completion.get("usage"))
    ref = _ref(request)
    if ref is not None:
        ref.final = response
    return response


class _OpenItem:
    """An output item being streamed: where it is, and its text so far."""

    __slots__ = ("index", "item", "kind", "name", "text")

    def __init__(self, kind: str, item: dict[str, Any], index: int, name: str = "") -> None:
        self.kind = kind  # "reasoning", "message" or "call"
        self.item = item
        self.index = index
        self.name = name  # a call's canonical function name
        self.text: list[str] = []

    def where(self) -> dict[str, Any]:
        return {"item_id": self.item["id"], "output_index": self.index}


class ResponseEvents:
    """Canonical chat.completion.chunk dicts -> the Responses API's stream events (SSE).

    Reasoning and text are one item at a time; a provider's tool calls stay open until the
    answer ends (fragments of parallel calls may interleave), then close in order."""

    def __init__(self, model: str, request: dict[str, Any]) -> None:
        self.response = envelope(new_id("resp_"), request, model, int(time.time()))
        self.ref = _ref(request)
        if self.ref is not None:
            self.ref.final = self.response  # as far as it got, should the stream break off
        self.tools = tool_names(request)
        self.sequence = 0
        self.started = False
        self.current: _OpenItem | None = None
        self.calls: dict[int, _OpenItem] = {}  # canonical tool call index -> its item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.signature: str | None = None

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        data = {"type": kind, **payload, "sequence_number": self.sequence}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _start(self) -> bytes:
        self.started = True
        return self._event("response.created", {"response": self.response}) + self._event(
            "response.in_progress", {"response": self.response}
        )

    def _add(self, kind: str, item: dict[str, Any], name: str = "") -> tuple[_OpenItem, bytes]:
        output = self.response["output"]
        opened = _OpenItem(kind, item, len(output), name)
        output.append(item)
        return opened, self._event(
            "response.output_item.added", {"output_index": opened.index, "item": item}
        )

    def _done(self, opened: _OpenItem, item: dict[str, Any]) -> bytes:
        self.response["output"][opened.index] = item
        return self._event(
            "response.output_item.done", {"output_index": opened.index, "item": item}
        )

    def _close_current(self) -> bytes:
        opened = self.current
        if opened is None:
            return b""
        self.current = None
        text = "".join(opened.text)
        where = opened.where()
        if opened.kind == "reasoning":
            out = self._event(
                "response.reasoning_text.done", {**where, "content_index": 0, "text": text}
            )
            done = _reasoning_item(opened.item["id"], text, self.signature)
            self.signature = None
            return out + self._done(opened, done)
        at = {**where, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        out = self._event("response.output_text.done", {**at, "text": text, "logprobs": []})
        out += self._event("response.content_part.done", {**at, "part": part})
        return out + self._done(opened, _message_item(opened.item["id"], text))

    def _close_calls(self) -> bytes:
        out = b""
        for opened in self.calls.values():
            text = "".join(opened.text)
            where = opened.where()
            item = opened.item
            done = _call_item(item["id"], item["call_id"], opened.name, text, self.tools)
            if done["type"] == "custom_tool_call":
                # A custom tool's text arrives inside the JSON of its one argument: it is
                # sent whole when the call ends.
                text = done["input"]
                out += self._event(
                    "response.custom_tool_call_input.delta", {**where, "delta": text}
                )
                out += self._event("response.custom_tool_call_input.done", {**where, "input": text})
            elif done["type"] == "function_call":
                out += self._event(
                    "response.function_call_arguments.done", {**where, "arguments": text}
                )
            out += self._done(opened, done)
        self.calls = {}
        return out

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self.started else self._start()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out += self._text("reasoning", delta["reasoning_content"])
            for block in delta.get("thinking_blocks") or []:
                if block.get("signature"):
                    self.signature = block["signature"]
            if delta.get("content"):
                out += self._text("message", delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        opened = self.current
        if opened is None or opened.kind != kind:
            out += self._close_current() + self._close_calls()
            if kind == "reasoning":
                item = {
                    "id": new_id("rs_"),
                    "type": "reasoning",
                    "summary": [],
                    "status": "in_progress",
                }
                opened, added = self._add(kind, item)
                out += added
            else:
                opened, added = self._add(kind, _message_item(new_id("msg_"), "", "in_progress"))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out += added + self._event(
                    "response.content_part.added",
                    {**opened.where(), "content_index": 0, "part": part},
                )
            self.current = opened
        opened.text.append(text)
        if kind == "reasoning":
            return out + self._event(
                "response.reasoning_text.delta",
                {**opened.where(), "content_index": 0, "delta": text},
            )
        return out + self._event(
            "response.output_text.delta",
            {**opened.where(), "content_index": 0, "delta": text, "logprobs": []},
        )

    def _call(self, call: dict[str, Any]) -> bytes:
        index = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        opened = self.calls.get(index)
        if opened is None:
            out += self._close_current()
            name = function.get("name") or ""
            item = _call_item(
                new_id("fc_"), call.get("id") or new_id("call_"), name, "", self.tools
            )
            item["status"] = "in_progress"
            opened, added = self._add("call", item, name)
            self.calls[index] = opened
            out += added
        arguments = function.get("arguments") or ""
        if not arguments:
            return out
        opened.text.append(arguments)
        if opened.item["type"] != "function_call":  # sent whole when the call ends
            return out
        return out + self._event(
            "response.function_call_arguments.delta", {**opened.where(), "delta": arguments}
        )

    def finish(self) -> bytes:
        out = b"" if self.started else self._start()
        out += self._close_current() + self._close_calls()
        _finished(self.response, self.finish_reason, self.usage)
        status = self.response["status"]
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return out + self._event(kind, {"response": self.response})

    def error(self, status: int, message: str) -> bytes:
        out = b"" if self.started else self._start()
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        out += self._event("error", error_event(code, message))
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        return out + self._event("response.failed", {"response": self.response})
