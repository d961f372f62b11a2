"""A system message in the middle of a conversation (Claude Code sends them; OpenAI's API takes
them anywhere), as each adapter carries it: in place where the provider has a system role
inside the conversation, else a marked note in a user turn at its place. The messages that
open the conversation stay the system instruction everywhere."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.providers.anthropic import AnthropicAdapter
from tollway.providers.bedrock import BedrockAdapter
from tollway.providers.cohere import CohereAdapter
from tollway.providers.gemini import GeminiAdapter
from tollway.providers.openai import OpenAIAdapter

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Which language?"},
    {"role": "assistant", "content": "Python."},
    {"role": "system", "content": [{"type": "text", "text": "The project is in Go now."}]},
    {"role": "user", "content": "And now?"},
]
NOTE = "<system-message>\nThe project is in Go now.\n</system-message>"


def body(adapter: Any, model: str = "m") -> Any:
    return orjson.loads(adapter.chat_call({"messages": CONVERSATION}, model, False).body)


def test_openai_keeps_it_in_place() -> None:
    sent = body(OpenAIAdapter())
    assert [m["role"] for m in sent["messages"]] == [
        "system",
        "user",
        "assistant",
        "system",
        "user",
    ]
    assert sent["messages"][3]["content"] == [{"type": "text", "text": "The project is in Go now."}]


def test_cohere_keeps_it_in_place() -> None:
    sent = body(CohereAdapter())
    assert [m["role"] for m in sent["messages"]] == [
        "system",
        "user",
        "assistant",
        "system",
        "user",
    ]


def test_gemini_has_no_system_role_in_contents_so_it_is_a_note_in_the_user_turn() -> None:
    sent = body(GeminiAdapter())
    assert sent["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][2]["parts"] == [{"text": NOTE}, {"text": "And now?"}]


def test_bedrock_takes_no_system_message_in_the_conversation_so_it_is_a_note() -> None:
    sent = body(BedrockAdapter(), "anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert sent["system"] == [{"text": "You are terse."}]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"] == [{"text": NOTE}, {"text": "And now?"}]


def test_anthropic_notes_it_unless_the_model_takes_system_messages_in_place() -> None:
    sent = body(AnthropicAdapter(), "claude-sonnet-4-5")
    assert sent["system"] == [{"type": "text", "text": "You are terse."}]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"][0] == {"type": "text", "text": NOTE}
    # A system message must follow a user turn: after an assistant turn it is a note even on
    # a model that takes system messages in place.
    sent = body(AnthropicAdapter(), "claude-opus-4-8")
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_gemini_puts_function_responses_first_in_their_turn() -> None:
    sent = orjson.loads(
        GeminiAdapter()
        .chat_call(
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c1", "function": {"name": "w", "arguments": "{}"}}],
                    },
                    {"role": "system", "content": "Answer in French."},
                    {"role": "tool", "tool_call_id": "c1", "content": "sun"},
                ]
            },
            "gemini-x",
            False,
        )
        .body
    )
    assert [list(p) for p in sent["contents"][2]["parts"]] == [["functionResponse"], ["text"]]
