"""The mock provider as the newer API features make it behave: thinking tokens in usage, JSON
answers for structured outputs, and system messages inside the conversation accepted where the
real provider accepts them and refused where it refuses them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollway.testing import mock_anthropic, mock_bedrock, mock_cohere, mock_gemini
from tollway.testing import mock_openai_chat as chat
from tollway.testing.mock_faults import FaultSpec
from tollway.testing.mock_reply import plan

SPEC = FaultSpec()
SCHEMA = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}


def anthropic_body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]} | (
        fields
    )


def anthropic_answer(body: dict[str, Any]) -> dict[str, Any]:
    assert mock_anthropic.validate(body) is None
    return mock_anthropic.message("msg_1", "m", plan(mock_anthropic.ask(body), SPEC, "x"), body)


@pytest.mark.parametrize("kind", ["enabled", "adaptive"])
def test_anthropic_reports_thinking_tokens_inside_output_tokens(kind: str) -> None:
    thinking = {"type": kind, "budget_tokens": 1024} if kind == "enabled" else {"type": kind}
    msg = anthropic_answer(anthropic_body(thinking=thinking))
    thought = msg["usage"]["output_tokens_details"]["thinking_tokens"]
    assert thought > 0
    assert msg["content"][0]["type"] == "thinking"
    plain = anthropic_answer(anthropic_body())
    assert "output_tokens_details" not in plain["usage"]
    assert msg["usage"]["output_tokens"] == plain["usage"]["output_tokens"] + thought
    # The stream's message_delta carries the same breakdown.
    events = mock_anthropic.stream_events(msg, 3)
    [delta] = [e for e in events if e.startswith(b"event: message_delta")]
    usage = json.loads(delta.split(b"data: ")[1])["usage"]
    assert usage["output_tokens_details"] == {"thinking_tokens": thought}


@pytest.mark.parametrize(
    "fields",
    [
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        {"output_format": {"type": "json_schema", "schema": SCHEMA}},
    ],
)
def test_anthropic_answers_structured_outputs_with_json_that_fits(fields: dict[str, Any]) -> None:
    msg = anthropic_answer(anthropic_body(**fields))
    assert [b["type"] for b in msg["content"]] == ["text"]
    assert json.loads(msg["content"][0]["text"]) == {"colour": "mock colour"}


def test_anthropic_takes_a_mid_conversation_system_message_after_tool_results() -> None:
    body = anthropic_body(
        tools=[{"name": "w", "input_schema": {"type": "object"}}],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w"}]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sun"}],
            },
            {"role": "system", "content": "Answer in one word."},
        ],
    )
    msg = anthropic_answer(body)
    assert msg["content"] == [{"type": "text", "text": "tool said: sun"}]


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"role": "tool", "content": "x"}, "messages.1.role"),
        ({"role": "system", "content": [{"type": "image", "source": {}}]}, "text blocks only"),
    ],
)
def test_anthropic_refuses_what_the_real_api_refuses(message: dict[str, Any], problem: str) -> None:
    body = anthropic_body(messages=[{"role": "user", "content": "hi"}, message])
    assert problem in (mock_anthropic.validate(body) or "")


def test_gemini_has_no_system_role_in_contents() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "system", "parts": [{"text": "be brief"}]},
        ]
    }
    assert "valid role: user, model" in (mock_gemini.validate(body) or "")


def test_bedrock_takes_no_system_message_in_the_conversation() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {"role": "system", "content": [{"text": "be brief"}]},
        ]
    }
    assert "user and assistant roles" in (mock_bedrock.validate(body) or "")


@pytest.mark.parametrize(("effort", "counted"), [(None, False), ("none", False), ("low", True)])
def test_openai_counts_reasoning_tokens_of_a_reasoning_model(
    effort: str | None, counted: bool
) -> None:
    body: dict[str, Any] = {"model": "o4-mini", "messages": [{"role": "user", "content": "hi"}]}
    if effort is not None:
        body["reasoning_effort"] = effort
    reply = plan(chat.chat_ask(body), SPEC, "c")
    usage = json.loads(chat.chat_body("c", 0, "o4-mini", reply, body))["usage"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert (reasoning > 0) is counted
    assert usage["completion_tokens"] == reply.completion_tokens + reasoning


def test_openai_and_cohere_see_tool_results_behind_a_trailing_system_message() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "system", "content": "Answer in one word."},
    ]
    tools = [{"type": "function", "function": {"name": "w", "parameters": {}}}]
    openai_ask = chat.chat_ask({"messages": messages, "tools": tools})
    assert openai_ask.tool_results == ["sun"]
    cohere_ask = mock_cohere.ask({"messages": messages, "tools": tools})
    assert cohere_ask.tool_results == ["sun"]


def test_preamble_puts_text_before_the_tool_calls() -> None:
    body = anthropic_body(
        tools=[{"name": "w", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "w"},
    )
    reply = plan(mock_anthropic.ask(body), FaultSpec(preamble=True), "x")
    msg = mock_anthropic.message("msg_1", "m", reply, body)
    assert [b["type"] for b in msg["content"]] == ["text", "tool_use"]
    assert msg["content"][0]["text"] == "Let me look that up."
    assert plan(mock_anthropic.ask(body), SPEC, "x").text == ""


@pytest.mark.parametrize(("kind", "refused"), [("enabled", True), ("adaptive", False)])
def test_anthropic_wants_signed_thinking_back_only_for_budgeted_thinking(
    kind: str, refused: bool
) -> None:
    body = anthropic_body(
        thinking={"type": kind, "budget_tokens": 1024} if kind == "enabled" else {"type": kind},
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w"}]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sun"}],
            },
        ],
    )
    assert (mock_anthropic.validate(body) is not None) is refused


def test_the_tool_setting_picks_the_tool_or_none() -> None:
    body = anthropic_body(
        tools=[
            {"name": "Agent", "input_schema": {"type": "object"}},
            {"name": "Bash", "input_schema": {"type": "object"}},
        ]
    )
    first = plan(mock_anthropic.ask(body), SPEC, "x")
    assert [c.name for c in first.tool_calls] == ["Agent"]
    bash = plan(mock_anthropic.ask(body), SPEC.merged("tool=Bash"), "x")
    assert [c.name for c in bash.tool_calls] == ["Bash"]
    talk = plan(mock_anthropic.ask(body), SPEC.merged("tool=none"), "x")
    assert (talk.tool_calls, talk.finish) == ([], "stop")
    assert talk.text
