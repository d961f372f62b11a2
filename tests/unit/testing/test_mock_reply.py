"""What the mock decides to answer (mock_reply), and how each wire format carries a tool call's
arguments: always a JSON object, whatever the tool's parameter schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tollway.providers.aws_eventstream import EventStreamDecoder
from tollway.testing import mock_anthropic, mock_bedrock, mock_cohere, mock_gemini, mock_responses
from tollway.testing import mock_openai_chat as chat
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_reply import Ask, plan, value_for

SPEC = FaultSpec()


def _sse_data(events: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        for line in event.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[len("data: ") :]))
    return out


# -- plan ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "arguments"),
    [
        ({}, {}),
        ({"type": "object"}, {}),
        ({"type": "object", "properties": {}}, {}),
        ({"properties": {"city": {"type": "string"}}}, {"city": "mock city"}),
        (
            {
                "type": "OBJECT",
                "properties": {"n": {"type": "INTEGER"}, "tags": {"type": "ARRAY"}},
                "required": ["n"],
            },
            {"n": 1},
        ),
        # Not an object schema at all: still an object, an empty one.
        ({"type": "string"}, {}),
    ],
)
def test_tool_arguments_are_always_an_object(
    schema: dict[str, Any], arguments: dict[str, Any]
) -> None:
    reply = plan(Ask("hi", tools=[("lookup", schema)]), SPEC, "call")
    assert reply.finish == "tool_calls"
    [call] = reply.tool_calls
    assert call.arguments == arguments
    assert json.loads(call.arguments_json) == arguments


def test_values_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "unit": {"enum": ["c", "f"]},
            "n": {"type": ["null", "integer"]},
            "ok": {"type": "boolean"},
            "xs": {"type": "array", "items": {"type": "number"}},
        },
    }
    assert value_for(schema) == {"unit": "c", "n": 1, "ok": True, "xs": [1.5]}


def test_tool_results_come_back_as_text() -> None:
    reply = plan(Ask("hi", tool_results=["22C", "sunny"], tools=[("f", {})]), SPEC, "c")
    assert (reply.text, reply.finish, reply.tool_calls) == ("tool said: 22C | sunny", "stop", [])


def test_forced_tool_and_parallel_calls() -> None:
    tools: list[tuple[str, dict[str, Any]]] = [("a", {}), ("b", {}), ("c", {})]
    forced = plan(Ask("hi", tools=tools, forced_tool="b"), SPEC, "x")
    assert [c.name for c in forced.tool_calls] == ["b"]
    parallel = plan(Ask("hi", tools=tools), FaultSpec(tool_calls=2), "x")
    assert [(c.id, c.name) for c in parallel.tool_calls] == [("x_0", "a"), ("x_1", "b")]
    assert plan(Ask("hi", tools=tools, tools_off=True), SPEC, "x").tool_calls == []


def test_stop_sequence_and_max_tokens() -> None:
    words = plan(Ask("hi"), FaultSpec(words=6), "x").text.split()
    stopped = plan(Ask("hi", stop=[words[3]]), FaultSpec(words=6), "x")
    assert (stopped.text, stopped.finish, stopped.stop_sequence) == (
        " ".join(words[:3]),
        "stop_sequence",
        words[3],
    )
    capped = plan(Ask("hi", max_tokens=2), FaultSpec(words=6), "x")
    assert (capped.text, capped.finish, capped.completion_tokens) == (
        " ".join(words[:2]),
        "length",
        2,
    )


# -- every wire format ---------------------------------------------------------------------------
# Each case: a request offering one tool with an empty parameter schema, answered whole and
# streamed; it returns the tool call's arguments from each, decoded where the format carries
# them as JSON text (OpenAI, Responses, Cohere, and every stream's argument deltas).

_USER_TEXT = "what time is it"


def _openai_chat() -> tuple[Any, Any]:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": _USER_TEXT}],
        "tools": [{"type": "function", "function": {"name": "now", "parameters": {}}}],
    }
    reply = plan(chat.chat_ask(body), SPEC, "call_1")
    whole = json.loads(chat.chat_body("c1", 0, "gpt-4o", reply, body))
    streamed = "".join(
        call["function"].get("arguments", "")
        for chunk in _sse_data(chat.chat_stream("c1", 0, "gpt-4o", reply, body, SPEC))
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    )
    arguments = whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    return json.loads(arguments), json.loads(streamed)


def _openai_chat_without_parameters() -> tuple[Any, Any]:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": _USER_TEXT}],
        "tools": [{"type": "function", "function": {"name": "now"}}],
    }
    reply = plan(chat.chat_ask(body), SPEC, "call_1")
    whole = json.loads(chat.chat_body("c1", 0, "gpt-4o", reply, body))
    arguments = json.loads(whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    return arguments, arguments


def _responses() -> tuple[Any, Any]:
    body = {
        "model": "gpt-4o",
        "input": _USER_TEXT,
        "tools": [{"type": "function", "name": "now", "parameters": {}}],
    }
    full = mock_responses.response("r1", "gpt-4o", plan(mock_responses.ask(body), SPEC, "c"), body)
    [item] = [i for i in full["output"] if i["type"] == "function_call"]
    events = _sse_data(mock_responses.stream_events(full, SPEC.chunks))
    streamed = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    return json.loads(item["arguments"]), json.loads(streamed)


def _anthropic() -> tuple[Any, Any]:
    body = {
        "model": "claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": _USER_TEXT}],
        "tools": [{"name": "now", "input_schema": {}}],
    }
    msg = mock_anthropic.message("m1", "claude", plan(mock_anthropic.ask(body), SPEC, "1"), body)
    [block] = [b for b in msg["content"] if b["type"] == "tool_use"]
    streamed = "".join(
        e["delta"]["partial_json"]
        for e in _sse_data(mock_anthropic.stream_events(msg, SPEC.chunks))
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    return block["input"], json.loads(streamed)


def _gemini() -> tuple[Any, Any]:
    body = {
        "contents": [{"role": "user", "parts": [{"text": _USER_TEXT}]}],
        "tools": [{"functionDeclarations": [{"name": "now", "parameters": {}}]}],
    }
    full = mock_gemini.response("r1", "gemini", plan(mock_gemini.ask(body), SPEC, "r1"), body)
    [part] = [p for p in full["candidates"][0]["content"]["parts"] if "functionCall" in p]
    streamed = [
        p["functionCall"]["args"]
        for e in _sse_data(mock_gemini.stream_events(full, SPEC.chunks))
        for p in e["candidates"][0]["content"]["parts"]
        if "functionCall" in p
    ]
    return part["functionCall"]["args"], streamed[0]


def _cohere() -> tuple[Any, Any]:
    body = {
        "model": "command",
        "messages": [{"role": "user", "content": _USER_TEXT}],
        "tools": [{"type": "function", "function": {"name": "now", "parameters": {}}}],
    }
    full = mock_cohere.response("m1", plan(mock_cohere.ask(body), SPEC, "1"), body)
    streamed = "".join(
        e["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for e in _sse_data(mock_cohere.stream_events(full, SPEC.chunks))
        if e["type"] == "tool-call-delta"
    )
    arguments = full["message"]["tool_calls"][0]["function"]["arguments"]
    return json.loads(arguments), json.loads(streamed)


def _bedrock() -> tuple[Any, Any]:
    body = {
        "messages": [{"role": "user", "content": [{"text": _USER_TEXT}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "now", "inputSchema": {"json": {}}}}]},
    }
    full = mock_bedrock.response(plan(mock_bedrock.ask(body), SPEC, "1"), body)
    [block] = [b for b in full["output"]["message"]["content"] if "toolUse" in b]
    decoder = EventStreamDecoder()
    streamed = "".join(
        json.loads(message.payload)["delta"]["toolUse"]["input"]
        for event in mock_bedrock.stream_events(full, SPEC.chunks)
        for message in decoder.feed(event)
        if message.headers.get(":event-type") == "contentBlockDelta"
        and "toolUse" in json.loads(message.payload)["delta"]
    )
    return block["toolUse"]["input"], json.loads(streamed)


@pytest.mark.parametrize(
    "answer",
    [
        _openai_chat,
        _openai_chat_without_parameters,
        _responses,
        _anthropic,
        _gemini,
        _cohere,
        _bedrock,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_empty_parameters_give_an_empty_object(answer: Callable[[], tuple[Any, Any]]) -> None:
    whole, streamed = answer()
    assert whole == {}
    assert streamed == {}
