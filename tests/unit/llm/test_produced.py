"""Usage counted from what an answer carried, for each client API's shape."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.llm import produced, tokens
from tollway.llm.client_apis import ANTHROPIC_MESSAGES, OPENAI_CHAT

COUNTER = tokens.counter_for("gpt-4o")
REQUEST = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi there"}]})


def sse(*payloads: dict[str, Any], event: str | None = None) -> bytes:
    out = b""
    for payload in payloads:
        if event:
            out += b"event: %s\n" % event.encode()
        out += b"data: " + orjson.dumps(payload) + b"\n\n"
    return out


def delivered(*chunks: bytes) -> produced.Delivered:
    kept = produced.Delivered()
    for chunk in chunks:
        kept.add(chunk)
    return kept


def count(family: str, answer: bytes | produced.Delivered, reported: Any = None) -> Any:
    api = ANTHROPIC_MESSAGES if family == "anthropic" else OPENAI_CHAT
    return produced.counted_usage(family, "gpt-4o", REQUEST, api.canonical, answer, reported)


def test_an_openai_chat_stream_counts_text_tool_calls_and_reasoning() -> None:
    stream = delivered(
        sse({"choices": [{"delta": {"role": "assistant", "content": "The tide "}}]}),
        sse({"choices": [{"delta": {"reasoning_content": "thinking hard"}}]}),
        sse(
            {
                "choices": [
                    {"delta": {"tool_calls": [{"function": {"name": "f", "arguments": '{"a"'}}]}}
                ]
            }
        )
        + b"data: [DONE]\n\n",
    )
    usage = count("openai", stream)
    visible = COUNTER.text("The tide " + "f" + '{"a"')
    reasoning = COUNTER.text("thinking hard")
    assert usage["prompt_tokens"] == COUNTER.chat(orjson.loads(REQUEST))
    assert usage["completion_tokens"] == visible + reasoning
    assert usage["completion_tokens_details"] == {"reasoning_tokens": reasoning}
    assert usage["counted"] is True


def test_an_anthropic_stream_keeps_the_reported_input_and_counts_the_output() -> None:
    stream = delivered(
        sse({"type": "message_start", "message": {"usage": {"input_tokens": 42}}}),
        sse({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Moon pulls"}}),
        sse({"type": "content_block_delta", "delta": {"thinking": "hmm"}}),
    )
    usage = count("anthropic", stream, {"prompt_tokens": 42, "completion_tokens": 1})
    assert usage["prompt_tokens"] == 42
    assert usage["completion_tokens"] == COUNTER.text("Moon pulls") + COUNTER.text("hmm")


def test_a_responses_stream_counts_deltas_not_the_done_events() -> None:
    stream = delivered(
        sse({"type": "response.output_text.delta", "delta": "Waves "}),
        sse({"type": "response.output_text.done", "text": "Waves "}),
        sse({"type": "response.reasoning_summary_text.delta", "delta": "why"}),
    )
    usage = count("openai", stream)
    assert usage["completion_tokens"] == COUNTER.text("Waves ") + COUNTER.text("why")
    assert usage["completion_tokens_details"]["reasoning_tokens"] == COUNTER.text("why")


def test_whole_answers_of_each_shape() -> None:
    chat = orjson.dumps({"choices": [{"message": {"content": "Spring tides"}}]})
    assert count("openai", chat)["completion_tokens"] == COUNTER.text("Spring tides")
    completion = orjson.dumps({"choices": [{"text": "neap"}]})
    assert count("openai", completion)["completion_tokens"] == COUNTER.text("neap")
    message = orjson.dumps(
        {
            "content": [
                {"type": "text", "text": "Ebb"},
                {"type": "tool_use", "name": "t", "input": {}},
            ]
        }
    )
    assert count("anthropic", message)["completion_tokens"] == COUNTER.text("Ebbt{}")
    response = orjson.dumps(
        {"output": [{"type": "message", "content": [{"type": "output_text", "text": "Flood"}]}]}
    )
    assert count("openai", response)["completion_tokens"] == COUNTER.text("Flood")


def test_the_reported_output_is_never_lowered() -> None:
    stream = delivered(sse({"choices": [{"delta": {"content": "a"}}]}))
    assert (
        count("openai", stream, {"prompt_tokens": 5, "completion_tokens": 90})["completion_tokens"]
        == 90
    )


def test_a_stream_past_the_kept_bytes_is_counted_in_proportion() -> None:
    event = sse({"choices": [{"delta": {"content": "word " * 100}}]})
    copies = produced.KEPT_BYTES // len(event) + 1
    stream = delivered(*[event] * (copies * 2))
    assert stream.kept < stream.total
    exact = COUNTER.text("word " * 100 * copies * 2)
    counted = count("openai", stream)["completion_tokens"]
    assert abs(counted - exact) / exact < 0.01


def test_a_request_that_is_not_chat_counts_its_input_text() -> None:
    body = orjson.dumps({"model": "m", "input": "abc def", "instructions": "be brief"})
    usage = produced.counted_usage("openai", "gpt-4o", body, OPENAI_CHAT.canonical, None, None)
    assert usage["prompt_tokens"] == COUNTER.text("abc def") + COUNTER.text("be brief")
    assert usage["completion_tokens"] == 0
