"""The conformance matrix, continued: what Claude Code and the APIs' newer fields need, for
every client SDK against every provider, through the gateway.

- a system message in the middle of the conversation (Claude Code's mid-conversation-system
  beta, OpenAI's system messages anywhere), carried in each provider's own way, and passed
  untouched to an Anthropic-format provider;
- structured output asked by an Anthropic client (`output_config.format`, the beta's
  `output_format`), answered as JSON by every provider;
- reasoning and cached-token counts, reported in each client's own fields, plain and streamed;
- JSON mode whose answer rides on a forced tool, with text the model writes beside the call.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import Process, get_json, start_gateway

sys.path.insert(0, str(Path(__file__).parent))

from tollway.testing import mock_anthropic, mock_gemini
from tollway.testing import mock_openai as wire
from tollway.testing import mock_openai_chat as openai_chat

from drivers import AnthropicDriver, OpenAIDriver
from matrix import PROVIDERS, gateway_config

VARIANTS = {
    "chat": "",
    # JSON mode on a model without Anthropic's structured outputs: a forced tool carries it,
    # and the model writes a sentence before calling it.
    "oldjson": "claude-3-5-haiku-20241022~preamble",
    "newjson": "~preamble",
}
OPENAI_FORMAT = ("openai", "azure", "mistral", "groq")
MID_SYSTEM = "From now on, answer in French."
NOTE = f"<system-message>\n{MID_SYSTEM}\n</system-message>"
SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["colour", "count"],
    "additionalProperties": False,
}
SCHEMA_ANSWER = {"colour": "mock colour", "count": 1}
# What each provider's mock reports as reasoning for a reasoning request; None: the provider's
# API reports no reasoning count (Bedrock's Converse, Cohere), so none is made up.
REASONING = {
    **dict.fromkeys(OPENAI_FORMAT, wire.count_tokens(openai_chat.REASONING)),
    "anthropic": wire.count_tokens(mock_anthropic.THINKING_TEXT),
    "gemini": wire.count_tokens(mock_gemini.THOUGHT),
    "bedrock": None,
    "cohere": None,
}
# Providers with explicit prompt caching that honour cache_control.
CACHING = ("anthropic", "bedrock")


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_gateway(
        workdir, gateway_config(mock.url, VARIANTS), env={"MOCK_KEY": UPSTREAM_KEY}
    )
    yield process
    process.stop()


@pytest.fixture
def oai(gateway: Process) -> Any:
    return OpenAIDriver(gateway.url, CLIENT_KEY).client


@pytest.fixture
def ant(gateway: Process) -> Any:
    return AnthropicDriver(gateway.url, CLIENT_KEY).client


def seen(mock: Process) -> dict[str, Any]:
    """The last request the mock provider received."""
    last: dict[str, Any] = get_json(mock.url + "/_mock/requests")[-1]
    return last


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


# -- a system message in the middle of the conversation ------------------------------------

HISTORY = [
    {"role": "user", "content": "Name three colours."},
    {"role": "assistant", "content": "Red, green, blue."},
    {"role": "system", "content": MID_SYSTEM},
    {"role": "user", "content": "And two more?"},
]


def assert_carried_in_the_providers_way(provider: str, body: dict[str, Any]) -> None:
    if provider == "gemini":
        assert body["systemInstruction"] == {"parts": [{"text": "Answer tersely."}]}
        assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
        assert [p["text"] for p in body["contents"][2]["parts"]] == [NOTE, "And two more?"]
    elif provider == "bedrock":
        assert body["system"] == [{"text": "Answer tersely."}]
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert [b["text"] for b in body["messages"][2]["content"]] == [NOTE, "And two more?"]
    elif provider == "anthropic":
        assert text_of(body["system"]) == "Answer tersely."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert [b["text"] for b in body["messages"][2]["content"]] == [NOTE, "And two more?"]
    else:  # OpenAI's format and Cohere's take a system message anywhere
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["system", "user", "assistant", "system", "user"]
        assert text_of(body["messages"][3]["content"]) == MID_SYSTEM


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_openai_sdk_mid_conversation_system_message(oai: Any, mock: Process, provider: str) -> None:
    reply = oai.chat.completions.create(
        model=f"{provider}-chat",
        messages=[{"role": "system", "content": "Answer tersely."}, *HISTORY],
    )
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert_carried_in_the_providers_way(provider, seen(mock)["body"])


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_anthropic_sdk_mid_conversation_system_message(
    ant: Any, mock: Process, provider: str, stream: bool
) -> None:
    beta = "mid-conversation-system-2026-04-07"
    kwargs: dict[str, Any] = {
        "model": f"{provider}-chat",
        "max_tokens": 1024,
        "system": "Answer tersely.",
        "messages": HISTORY,
        "extra_headers": {"anthropic-beta": beta},
    }
    if stream:
        with ant.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = ant.messages.create(**kwargs)
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    request = seen(mock)
    if provider == "anthropic":
        # Anthropic's own format: passed on untouched, the beta header with it.
        assert request["body"]["messages"] == HISTORY
        assert request["headers"]["anthropic-beta"] == beta
    else:
        assert_carried_in_the_providers_way(provider, request["body"])


# -- structured output from Anthropic clients ----------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("field", ["output_config", "output_format"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_anthropic_sdk_structured_output(ant: Any, provider: str, field: str, stream: bool) -> None:
    fmt = {"type": "json_schema", "schema": SCHEMA}
    kwargs: dict[str, Any] = {
        "model": f"{provider}-chat",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Name a colour and a count."}],
    }
    if field == "output_config":
        kwargs["output_config"] = {"format": fmt}
    else:  # the beta's field, which the SDK's create no longer names
        kwargs["extra_body"] = {"output_format": fmt}
    if stream:
        with ant.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = ant.messages.create(**kwargs)
    assert [b.type for b in message.content] == ["text"]
    assert json.loads(message.content[0].text) == SCHEMA_ANSWER
    assert message.stop_reason == "end_turn"


# -- reasoning and cached tokens -----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_openai_sdk_reasoning_tokens(oai: Any, provider: str, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": f"{provider}-chat",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "reasoning_effort": "low",
    }
    if stream:
        chunks = list(
            oai.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
    else:
        usage = oai.chat.completions.create(**kwargs).usage
    details = usage.completion_tokens_details
    assert (details.reasoning_tokens if details else None) == REASONING[provider]
    assert usage.completion_tokens >= (REASONING[provider] or 0)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_anthropic_sdk_thinking_tokens(ant: Any, provider: str, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": f"{provider}-chat",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "Name three colours."}],
    }
    if stream:
        with ant.messages.stream(**kwargs) as events:
            usage = events.get_final_message().usage
    else:
        usage = ant.messages.create(**kwargs).usage
    details = usage.output_tokens_details
    assert (details.thinking_tokens if details else None) == REASONING[provider]
    assert usage.output_tokens >= (REASONING[provider] or 0)


LONG_SYSTEM = "You answer questions about colours. " * 40


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_cached_tokens_reach_both_clients(oai: Any, ant: Any, provider: str, stream: bool) -> None:
    cache = {"type": "ephemeral"}
    question = [{"role": "user", "content": "Name three colours."}]
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": cache}]
    openai_kwargs: dict[str, Any] = {
        "model": f"{provider}-chat",
        "messages": [{"role": "system", "content": system}, *question],
    }
    if stream:
        chunks = list(
            oai.chat.completions.create(
                **openai_kwargs, stream=True, stream_options={"include_usage": True}
            )
        )
        openai_usage = chunks[-1].usage
    else:
        openai_usage = oai.chat.completions.create(**openai_kwargs).usage
    anthropic_kwargs: dict[str, Any] = {
        "model": f"{provider}-chat",
        "max_tokens": 1024,
        "system": system,
        "messages": question,
    }
    if stream:
        with ant.messages.stream(**anthropic_kwargs) as events:
            anthropic_usage = events.get_final_message().usage
    else:
        anthropic_usage = ant.messages.create(**anthropic_kwargs).usage
    details = openai_usage.prompt_tokens_details
    openai_cached = (details.cached_tokens if details else None) or 0
    anthropic_cached = anthropic_usage.cache_read_input_tokens or 0
    if provider in CACHING:
        assert openai_cached >= wire.count_tokens(LONG_SYSTEM)
        assert anthropic_cached >= wire.count_tokens(LONG_SYSTEM)
        assert openai_usage.prompt_tokens >= openai_cached  # cache reads are part of the prompt
    else:
        assert (openai_cached, anthropic_cached) == (0, 0)


# -- JSON mode carried by a forced tool ------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fmt", ["json_object", "json_schema"])
@pytest.mark.parametrize("variant", ["oldjson", "newjson"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_json_mode_answer_is_only_json(
    oai: Any, provider: str, variant: str, fmt: str, stream: bool
) -> None:
    response_format: dict[str, Any] = {"type": fmt}
    if fmt == "json_schema":
        response_format["json_schema"] = {"name": "answer", "schema": SCHEMA}
    kwargs: dict[str, Any] = {
        "model": f"{provider}-{variant}",
        "messages": [{"role": "user", "content": "Name a colour and a count."}],
        "response_format": response_format,
    }
    if stream:
        chunks = oai.chat.completions.create(**kwargs, stream=True)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        content = oai.chat.completions.create(**kwargs).choices[0].message.content
    answer = json.loads(content)  # the model's sentence before the tool call is not in it
    assert isinstance(answer, dict)
    if fmt == "json_schema":
        assert answer == SCHEMA_ANSWER
