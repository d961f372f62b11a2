"""The shared conformance suite: every client SDK against every provider, through the gateway.

Each pair runs the same behaviours: chat, streaming, usage, max_tokens, stop sequences, system
prompts, tool calls (plain, streamed, parallel, with results sent back), provider errors and
streams that fail midway. The official SDKs parse the wire format; the mock provider speaks each
provider's own format. A provider joins by being added to PROVIDERS.
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

from tollway.testing import mock_openai as wire

from drivers import TIME_TOOL, WEATHER_TOOL, AnthropicDriver, OpenAIDriver, ResponsesDriver
from matrix import PROVIDERS, gateway_config

DRIVERS = {
    "openai-sdk": OpenAIDriver,
    "anthropic-sdk": AnthropicDriver,
    "responses-sdk": ResponsesDriver,
}
VARIANTS = {
    "chat": "",
    "parallel": "~tool_calls=2",
    "ratelimited": "~status=429",
    "overloaded": "~status=503",
    "midstream": "~stream_error_after=3",
    "cut": "~cut_after=3",
}
QUESTION = "Name three colours."


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    config = gateway_config(mock.url, VARIANTS)
    process = start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY})
    yield process
    process.stop()


@pytest.fixture(
    params=[(d, p) for d in DRIVERS for p in PROVIDERS], ids=lambda pair: f"{pair[0]}-to-{pair[1]}"
)
def pair(request: pytest.FixtureRequest, gateway: Process) -> tuple[Any, str]:
    driver_name, provider = request.param
    return DRIVERS[driver_name](gateway.url, CLIENT_KEY), provider


# The Responses API has no stop sequences.
WITH_STOP = [d for d in DRIVERS if d != "responses-sdk"]


@pytest.fixture(
    params=[(d, p) for d in WITH_STOP for p in PROVIDERS],
    ids=lambda pair: f"{pair[0]}-to-{pair[1]}",
)
def stop_pair(request: pytest.FixtureRequest, gateway: Process) -> tuple[Any, str]:
    driver_name, provider = request.param
    return DRIVERS[driver_name](gateway.url, CLIENT_KEY), provider


def words(n: int = 50, question: str = QUESTION) -> str:
    return " ".join(wire.reply_words(question, n))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_chat_text_finish_and_usage(pair: tuple[Any, str], stream: bool) -> None:
    driver, provider = pair
    answer = driver.ask(f"{provider}-chat", QUESTION, stream=stream)
    assert answer.text == words()
    assert answer.finish == "stop"
    assert answer.completion_tokens == 50
    assert answer.prompt_tokens > 0


def test_stream_and_plain_agree_on_usage(pair: tuple[Any, str]) -> None:
    driver, provider = pair
    plain = driver.ask(f"{provider}-chat", QUESTION)
    streamed = driver.ask(f"{provider}-chat", QUESTION, stream=True)
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (
        plain.prompt_tokens,
        plain.completion_tokens,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_max_tokens_ends_with_length(pair: tuple[Any, str], stream: bool) -> None:
    driver, provider = pair
    answer = driver.ask(f"{provider}-chat", QUESTION, stream=stream, max_tokens=5)
    assert answer.text == words(5)
    assert answer.finish == "length"
    assert answer.completion_tokens == 5


def test_stop_sequence_cuts_the_reply(stop_pair: tuple[Any, str]) -> None:
    driver, provider = stop_pair
    full = words()
    stop = " " + full.split()[3]
    answer = driver.ask(f"{provider}-chat", QUESTION, stop=[stop])
    assert answer.text == full[: full.find(stop)].rstrip()
    assert answer.finish == "stop"


def test_system_prompt_reaches_the_provider_in_its_format(
    pair: tuple[Any, str], mock: Process
) -> None:
    driver, provider = pair
    driver.ask(f"{provider}-chat", QUESTION, system="Answer tersely.")
    seen = get_json(mock.url + "/_mock/requests")[-1]
    body = seen["body"]
    if seen["path"].endswith("/responses"):  # a Responses client, natively served
        assert body["instructions"] == "Answer tersely."
    elif provider == "anthropic":
        system = body["system"]
        text = system if isinstance(system, str) else "".join(b["text"] for b in system)
        assert text == "Answer tersely."
        assert all(m["role"] in ("user", "assistant") for m in body["messages"])
    elif provider == "gemini":
        assert body["systemInstruction"] == {"parts": [{"text": "Answer tersely."}]}
        assert [c["role"] for c in body["contents"]] == ["user"]
    elif provider == "bedrock":
        assert body["system"] == [{"text": "Answer tersely."}]
        assert [m["role"] for m in body["messages"]] == ["user"]
    else:
        assert body["messages"][0] == {"role": "system", "content": "Answer tersely."}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_tool_call(pair: tuple[Any, str], stream: bool) -> None:
    driver, provider = pair
    answer = driver.ask(f"{provider}-chat", "weather?", stream=stream, tools=[WEATHER_TOOL])
    assert answer.finish == "tool"
    [(call_id, name, arguments)] = answer.tool_calls
    assert call_id
    assert (name, arguments) == ("get_weather", {"city": "mock city", "days": 1})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_parallel_tool_calls(pair: tuple[Any, str], stream: bool) -> None:
    driver, provider = pair
    answer = driver.ask(
        f"{provider}-parallel", "weather and time?", stream=stream, tools=[WEATHER_TOOL, TIME_TOOL]
    )
    assert answer.finish == "tool"
    assert [(name, args) for _, name, args in answer.tool_calls] == [
        ("get_weather", {"city": "mock city", "days": 1}),
        ("get_time", {"city": "mock city"}),
    ]
    assert len({call_id for call_id, _, _ in answer.tool_calls}) == 2


def test_tool_results_go_back_with_their_ids(pair: tuple[Any, str]) -> None:
    driver, provider = pair
    first = driver.ask(f"{provider}-chat", "weather?", tools=[WEATHER_TOOL])
    second = driver.tool_round_trip(f"{provider}-chat", first, "sunny, 21 C")
    # The mock refuses a tool result whose id does not answer the previous tool call.
    assert second.text == "tool said: sunny, 21 C"
    assert second.finish == "stop"


def test_rate_limit_is_recognisable(pair: tuple[Any, str]) -> None:
    driver, provider = pair
    with pytest.raises(driver.errors.RateLimitError):
        driver.ask(f"{provider}-ratelimited", QUESTION)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_overloaded_provider_is_a_server_error(pair: tuple[Any, str], stream: bool) -> None:
    driver, provider = pair
    with pytest.raises(driver.errors.APIStatusError) as info:
        driver.ask(f"{provider}-overloaded", QUESTION, stream=stream)
    assert info.value.status_code >= 500


@pytest.mark.parametrize("variant", ["midstream", "cut"])
def test_a_stream_that_fails_midway_raises_in_the_sdk(pair: tuple[Any, str], variant: str) -> None:
    driver, provider = pair
    with pytest.raises(driver.errors.APIError):
        driver.ask(f"{provider}-{variant}", QUESTION, stream=True)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_json_schema_output(gateway: Process, provider: str) -> None:
    client = OpenAIDriver(gateway.url, CLIENT_KEY).client
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["colour", "count"],
    }
    reply = client.chat.completions.create(
        model=f"{provider}-chat",
        messages=[{"role": "user", "content": QUESTION}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        },
    )
    assert json.loads(reply.choices[0].message.content) == {"colour": "mock colour", "count": 1}
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_20_turn_previous_response_id_chain(
    gateway: Process, mock: Process, provider: str
) -> None:
    """Each turn sends only what is new: the gateway keeps the chain (or, on a provider with
    a Responses API of its own, passes the id on for it to keep)."""
    client = ResponsesDriver(gateway.url, CLIENT_KEY).client
    previous = None
    for turn in range(20):
        response = client.responses.create(
            model=f"{provider}-chat", input=f"turn {turn}", previous_response_id=previous
        )
        seen = get_json(mock.url + "/_mock/requests")[-1]
        if seen["path"].endswith("/responses"):
            assert seen["body"].get("previous_response_id") == previous
        previous = response.id
    text = json.dumps(seen["body"])
    if not seen["path"].endswith("/responses"):
        assert all(f"turn {turn}" in text for turn in range(20))


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_responses_structured_output(gateway: Process, provider: str) -> None:
    client = ResponsesDriver(gateway.url, CLIENT_KEY).client
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["colour", "count"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=f"{provider}-chat",
        input=QUESTION,
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
        },
    )
    assert json.loads(response.output_text) == {"colour": "mock colour", "count": 1}
    assert response.status == "completed"
