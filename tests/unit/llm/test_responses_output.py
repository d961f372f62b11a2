"""Canonical answers as Response objects and as the Responses stream's events: item order,
custom and namespaced tool calls given back in the client's own shapes, usage, incomplete and
failed endings."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.llm.responses_output import ResponseEvents, to_response
from tollway.llm.responses_request import SIGNATURE_PREFIX

REQUEST: dict[str, Any] = {
    "model": "m",
    "instructions": "Be brief.",
    "input": "x",
    "tools": [
        {"type": "function", "name": "shell", "parameters": {"type": "object"}},
        {"type": "custom", "name": "apply_patch"},
        {"type": "namespace", "name": "files", "tools": [{"type": "function", "name": "read"}]},
    ],
    "max_output_tokens": 100,
}
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 7,
    "total_tokens": 19,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


def call(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"index": index, "id": call_id, "function": {"name": name, "arguments": arguments}}


def test_a_completion_with_thinking_text_and_every_kind_of_call() -> None:
    completion = {
        "model": "claude-x",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Patching.",
                    "reasoning_content": "think",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "think", "signature": "S"}
                    ],
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "shell", "arguments": '{"cmd":"ls"}'}},
                        {
                            "id": "c2",
                            "function": {"name": "apply_patch", "arguments": '{"input":"P"}'},
                        },
                        {"id": "c3", "function": {"name": "files__read", "arguments": "{}"}},
                    ],
                },
            }
        ],
        "usage": USAGE,
    }
    response = to_response(completion, REQUEST, "m")
    assert response["object"] == "response" and response["id"].startswith("resp_")
    assert response["status"] == "completed" and response["model"] == "claude-x"
    assert response["instructions"] == "Be brief." and response["max_output_tokens"] == 100
    output = response["output"]
    assert [item["type"] for item in output] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
        "function_call",
    ]
    assert output[0]["encrypted_content"] == SIGNATURE_PREFIX + "S"
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "think"}]
    assert output[1]["content"][0]["text"] == "Patching."
    assert (output[2]["call_id"], output[2]["arguments"]) == ("c1", '{"cmd":"ls"}')
    assert (output[3]["name"], output[3]["input"]) == ("apply_patch", "P")
    assert (output[4]["name"], output[4]["namespace"]) == ("read", "files")
    assert response["usage"] == {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 19,
    }


def test_a_length_finish_is_incomplete() -> None:
    completion = {"choices": [{"finish_reason": "length", "message": {"content": "cut"}}]}
    response = to_response(completion, {"input": "x"}, "m")
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def parse(stream: bytes) -> list[dict[str, Any]]:
    events = []
    for block in stream.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert name == "event: " + event["type"]
        events.append(event)
    return events


def test_a_stream_of_reasoning_text_and_calls() -> None:
    encoder = ResponseEvents("m", REQUEST)
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "th"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "ink"}}]},
        {"choices": [{"index": 0, "delta": {"thinking_blocks": [{"signature": "S"}]}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(0, "c1", "shell", '{"cm')]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(1, "c2", "apply_patch", "")]}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'd":1}'}}]},
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 1, "function": {"arguments": '{"input":"P"}'}}]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": USAGE},
    ]
    stream = b"".join(encoder.feed(chunk) for chunk in chunks) + encoder.finish()
    events = parse(stream)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 3}
    reasoning, message, shell, patch = final["output"]
    assert reasoning["encrypted_content"] == SIGNATURE_PREFIX + "S"
    assert message["content"][0]["text"] == "Hello"
    assert (shell["arguments"], shell["status"]) == ('{"cmd":1}', "completed")
    assert (patch["type"], patch["input"]) == ("custom_tool_call", "P")
    # The items that were added are the items that were done, at the same places.
    added = [
        (e["output_index"], e["item"]["id"])
        for e in events
        if e["type"].endswith("added") and "item" in e
    ]
    done = [(e["output_index"], e["item"]["id"]) for e in events if e["type"].endswith("item.done")]
    assert (
        sorted(added) == sorted(done) == [(i, item["id"]) for i, item in enumerate(final["output"])]
    )


def test_a_stream_cut_by_the_length_limit_is_incomplete() -> None:
    encoder = ResponseEvents("m", {"input": "x"})
    stream = encoder.feed(
        {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]}
    )
    events = parse(stream + encoder.finish())
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_upstream_failure_mid_stream_ends_the_response_failed() -> None:
    encoder = ResponseEvents("m", {"input": "x"})
    stream = encoder.feed({"choices": [{"index": 0, "delta": {"content": "a"}}]})
    events = parse(stream + encoder.error(502, "upstream went away"))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "upstream went away"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"] == {
        "code": "server_error",
        "message": "upstream went away",
    }


def test_a_tool_search_call_comes_back_as_the_client_s_item() -> None:
    request = {"input": "x", "tools": [{"type": "tool_search", "execution": "client"}]}
    completion = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "tool_calls": [
                        {
                            "id": "c1",
                            "function": {"name": "tool_search", "arguments": '{"query":"q"}'},
                        }
                    ]
                },
            }
        ]
    }
    [item] = to_response(completion, request, "m")["output"]
    assert (item["type"], item["call_id"], item["arguments"]) == (
        "tool_search_call",
        "c1",
        {"query": "q"},
    )
    assert item["execution"] == "client"
    encoder = ResponseEvents("m", request)
    chunk = {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [call(0, "c1", "tool_search", '{"query":"q"}')]}}
        ]
    }
    events = parse(encoder.feed(chunk) + encoder.finish())
    assert "response.function_call_arguments.delta" not in [e["type"] for e in events]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done[0]["type"] == "tool_search_call" and done[0]["arguments"] == {"query": "q"}
