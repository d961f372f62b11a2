"""OpenAI's Responses API (`POST /v1/responses`) as the mock provider speaks it: the response
object, function calls as output items, and the stream's typed events (response.created ...
response.output_text.delta ... response.completed), each with its sequence number."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tollway.testing import mock_openai as wire
from tollway.testing.mock_reply import Ask, Reply


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        p.get("text", "")
        for p in content or []
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
    )


def ask(body: dict[str, Any]) -> Ask:
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
    outputs = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        outputs.append(str(item.get("output", "")))
    last_user = next(
        (_text(i.get("content")) for i in reversed(items) if i.get("role") == "user"), ""
    )
    tools = [
        (t["name"], t.get("parameters") or {})
        for t in body.get("tools") or []
        if t.get("type") == "function"
    ]
    choice = body.get("tool_choice")
    forced = choice.get("name") if isinstance(choice, dict) else None
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    # Structured output: the answer is a JSON value of the schema (as the chat mock's).
    schema = (
        fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    )
    return Ask(
        last_user,
        list(reversed(outputs)) or None,
        tools,
        forced,
        choice == "none",
        schema,
        body.get("max_output_tokens"),
        [],
    )


def response(
    rid: str, model: str, reply: Reply, body: dict[str, Any], status: str = "completed"
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reply.text:
        output.append(
            {
                "id": f"msg_{rid}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    for call in reply.tool_calls:
        output.append(
            {
                "id": f"fc_{call.id}",
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments_json,
                "status": "completed",
            }
        )
    prompt = wire.count_tokens(orjson.dumps(body.get("input") or "").decode())
    incomplete = reply.finish == "length"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete and status == "completed" else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "model": model,
        "output": output,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "metadata": {},
        "store": True,
        "user": None,
        "reasoning": {"effort": None, "summary": None},
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": reply.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + reply.completion_tokens,
        },
    }


def stream_events(full: dict[str, Any], chunks: int) -> list[bytes]:
    events: list[tuple[str, dict[str, Any]]] = []
    pending = {**full, "status": "in_progress", "output": [], "usage": None}
    events.append(("response.created", {"response": pending}))
    events.append(("response.in_progress", {"response": pending}))
    for index, item in enumerate(full["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(
                (
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "status": "in_progress", "content": []},
                    },
                )
            )
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(
                (
                    "response.content_part.added",
                    {**where, "part": {"type": "output_text", "text": "", "annotations": []}},
                )
            )
            for piece in wire.split_evenly(text.split(" "), chunks):
                events.append(
                    ("response.output_text.delta", {**where, "delta": piece, "logprobs": []})
                )
            events.append(("response.output_text.done", {**where, "text": text, "logprobs": []}))
            events.append(("response.content_part.done", {**where, "part": item["content"][0]}))
        else:
            events.append(
                (
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"},
                    },
                )
            )
            events.append(
                (
                    "response.function_call_arguments.delta",
                    {"item_id": item["id"], "output_index": index, "delta": item["arguments"]},
                )
            )
            events.append(
                (
                    "response.function_call_arguments.done",
                    {"item_id": item["id"], "output_index": index, "arguments": item["arguments"]},
                )
            )
        events.append(("response.output_item.done", {"output_index": index, "item": item}))
    final = "response.incomplete" if full["status"] == "incomplete" else "response.completed"
    events.append((final, {"response": full}))
    return [
        b"event: "
        + kind.encode()
        + b"\ndata: "
        + orjson.dumps({"type": kind, **payload, "sequence_number": i})
        + b"\n\n"
        for i, (kind, payload) in enumerate(events)
    ]


def stream_error_event() -> bytes:
    return (
        b"event: error\ndata: "
        + orjson.dumps(
            {
                "type": "error",
                "code": "server_error",
                "param": None,
                "sequence_number": 0,
                "message": "The server had an error while processing your request (mock).",
            }
        )
        + b"\n\n"
    )


class KeptResponses:
    """The responses the mock keeps (`store`, the API's default), as OpenAI does: retrieved,
    listed (input items), deleted and continued (`previous_response_id`) by id. The oldest go
    first past `limit`."""

    def __init__(self, limit: int = 2000) -> None:
        self.limit = limit
        self.kept: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}

    def unknown_previous(self, body: dict[str, Any]) -> bytes | None:
        """The 400 OpenAI answers a `previous_response_id` it does not keep."""
        previous = body.get("previous_response_id")
        if previous is None or previous in self.kept:
            return None
        return orjson.dumps(
            {
                "error": {
                    "message": f"Previous response with id '{previous}' not found.",
                    "type": "invalid_request_error",
                    "param": "previous_response_id",
                    "code": "previous_response_not_found",
                }
            }
        )

    def keep(self, full: dict[str, Any], body: dict[str, Any]) -> None:
        if body.get("store") is False:
            return
        raw = body.get("input")
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
        numbered = [
            {"id": f"msg_{full['id']}_in{n}", "type": "message", **item}
            for n, item in enumerate(items)
        ]
        for item in numbered:  # listed as OpenAI lists them: text content as input_text parts
            if isinstance(item.get("content"), str):
                item["content"] = [{"type": "input_text", "text": item["content"]}]
        self.kept[full["id"]] = (full, numbered)
        while len(self.kept) > self.limit:
            del self.kept[next(iter(self.kept))]

    def answer(self, method: str, rest: str) -> tuple[int, bytes]:
        """`GET|DELETE /responses/{id}` or `GET /responses/{id}/input_items`."""
        response_id, _, tail = rest.partition("/")
        found = self.kept.get(response_id)
        if found is None or (tail and (tail != "input_items" or method != "GET")):
            message = f"Response with id '{response_id}' not found."
            return 404, orjson.dumps(
                {"error": {"message": message, "type": "invalid_request_error", "code": None}}
            )
        full, items = found
        if method == "DELETE":
            del self.kept[response_id]
            return 200, orjson.dumps({"id": response_id, "object": "response", "deleted": True})
        if tail:
            page = {
                "object": "list",
                "data": items,
                "first_id": items[0]["id"] if items else None,
                "last_id": items[-1]["id"] if items else None,
                "has_more": False,
            }
            return 200, orjson.dumps(page)
        return 200, orjson.dumps(full)
