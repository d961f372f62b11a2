"""Prompt APIs end to end: declared with `tollway apply` (a team's prompt service, its version,
an app subscribed), served from the store by two workers, called as REST with plain HTTP and
through the chat API with the `openai` SDK; input refused naming the field before any model
call; template syntax in a value sent as written; structured output checked and repaired once;
the call recorded as one call of the app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateways import CLIENT_KEY
from prompt_api_servers import record_of, start_prompt_gateway
from servers import Process, get_json, requests_seen


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    process = start_prompt_gateway(workdir, mock)
    yield process
    process.stop()


@pytest.fixture
def http(gateway: Process) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=30
    ) as client:
        yield client


def last_request(mock: Process) -> dict[str, Any]:
    seen: dict[str, Any] = get_json(mock.url + "/_mock/requests")[-1]
    return seen


@pytest.mark.parametrize("api", ["sentiment", "sentiment-claude"])
def test_a_prompt_api_answers_its_typed_input_with_its_output(
    http: httpx.Client, mock: Process, api: str
) -> None:
    answer = http.post(f"/apis/{api}", json={"text": "I love this gateway", "language": "en"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"label", "score"} and body["label"] in ("positive", "negative", "neutral")
    assert answer.headers["x-tollway-prompt-version"] == "1"
    sent = last_request(mock)["body"]
    text = json.dumps(sent)
    assert "Language: en. Text: I love this gateway" in text
    assert "Give the sentiment of the user's text" in text


def test_a_prompt_without_output_schema_answers_text(http: httpx.Client) -> None:
    answer = http.post("/apis/summarize", json={"text": "a long story"})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"text"} and answer.json()["text"]


@pytest.mark.parametrize(
    ("given", "param", "said"),
    [
        ({}, "$", "'text' is a required property"),
        ({"text": 7}, "$.text", "7 is not of type 'string'"),
        ({"text": "ok", "language": "de"}, "$.language", "'de' is not one of ['en', 'fr']"),
        ({"text": "ok", "mood": "x"}, "$", "'mood' was unexpected"),
        ({"text": ""}, "$.text", "should be non-empty"),
    ],
)
def test_input_that_does_not_fit_is_a_400_naming_the_field_before_any_model_call(
    http: httpx.Client, mock: Process, given: dict[str, Any], param: str, said: str
) -> None:
    before = requests_seen(mock)
    answer = http.post("/apis/sentiment", json=given)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_input"
    assert said in error["message"]
    assert requests_seen(mock) == before


def test_bad_bodies_and_oversized_input_are_refused(http: httpx.Client, mock: Process) -> None:
    before = requests_seen(mock)
    for body in (b"not json", b"[1, 2]", b'{"text": "x" ' + b" " * 10):
        answer = http.post("/apis/sentiment", content=body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_input"
    too_big = http.post("/apis/sentiment", json={"text": "x" * 70_000})
    assert (
        too_big.status_code == 400 and "more than the 65536" in too_big.json()["error"]["message"]
    )
    assert requests_seen(mock) == before


@pytest.mark.parametrize(
    "value",
    ["{{ language }}", "{{text}}", "{% raw %}{{ 7*7 }}{% endraw %}", "${text} {0} %(text)s"],
)
def test_template_syntax_in_a_value_is_sent_as_written(
    http: httpx.Client, mock: Process, value: str
) -> None:
    answer = http.post("/apis/sentiment", json={"text": value, "language": "fr"})
    assert answer.status_code == 200, answer.text
    messages = last_request(mock)["body"]["messages"]
    assert messages[-1]["content"] == f"Language: fr. Text: {value}"


def test_an_almost_json_answer_is_repaired_once(
    http: httpx.Client, mock: Process, gateway: Process
) -> None:
    before = requests_seen(mock)
    answer = http.post("/apis/sloppy", json={"text": "meh"})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"label", "score"}
    assert answer.headers["x-tollway-repaired"] == "1"
    assert requests_seen(mock) == before + 2
    repair = last_request(mock)["body"]["messages"]
    assert repair[-2]["role"] == "assistant" and repair[-2]["content"].startswith("Here you go")
    assert "What is wrong with it" in repair[-1]["content"] and "label" in repair[-1]["content"]
    # One call of the app, its tokens those of both model calls.
    record = record_of(gateway, answer.headers["x-request-id"])
    assert record["status"] == 200 and record["outcome"] == "completed"
    assert record["model"] == "sloppy" and record["retries"] == 1
    first, second = (r["body"] for r in get_json(mock.url + "/_mock/requests")[-2:])
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0
    assert len(second["messages"]) == len(first["messages"]) + 2


def test_the_openai_sdk_calls_a_prompt_api_as_a_model(gateway: Process) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    by_message = client.chat.completions.create(
        model="prompt:sentiment",
        messages=[{"role": "user", "content": json.dumps({"text": "great", "language": "en"})}],
    )
    assert by_message.model == "prompt:sentiment"
    assert set(json.loads(by_message.choices[0].message.content or "")) == {"label", "score"}
    assert by_message.usage is not None and by_message.usage.total_tokens > 0
    by_variables = client.chat.completions.create(
        model="prompt:ml/sentiment",
        messages=[],
        extra_body={"variables": {"text": "awful"}},
    )
    assert json.loads(by_variables.choices[0].message.content or "")["label"]
    # One string property: the message's text is that property.
    plain = client.chat.completions.create(
        model="prompt:summarize", messages=[{"role": "user", "content": "a long story"}]
    )
    assert plain.choices[0].message.content
    streamed = client.chat.completions.create(
        model="prompt:summarize",
        messages=[{"role": "user", "content": "a long story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(streamed)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="prompt:sentiment", messages=[], extra_body={"variables": {"text": 3}}
        )
    assert info.value.param == "variables.text"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="prompt:nothing", messages=[])


def test_an_a_b_split_sends_each_version_its_share(http: httpx.Client, mock: Process) -> None:
    calls = 300
    seen = {"1": 0, "2": 0}
    for n in range(calls):
        answer = http.post("/apis/ab", json={"text": f"story {n}"})
        assert answer.status_code == 200, answer.text
        version = answer.headers["x-tollway-prompt-version"]
        seen[version] += 1
        # The version that answered is the one whose template was sent.
        sent = last_request(mock)["body"]["messages"][-1]["content"]
        assert sent.startswith("In brief:" if version == "2" else "Summarise in one line:")
    # 30% of 300: 90 expected, standard deviation 7.9; four of them either way.
    assert 58 <= seen["2"] <= 122, seen
    pinned = [http.post("/apis/ab", json={"text": "x"}, headers={"x-tollway-version": "1"})]
    pinned += [http.post("/apis/ab", json={"text": "x"}, headers={"x-tollway-version": "2"})]
    assert [a.headers["x-tollway-prompt-version"] for a in pinned] == ["1", "2"]


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_a_text_api_streams_its_answer_as_server_sent_events(http: httpx.Client) -> None:
    whole = http.post("/apis/summarize", json={"text": "a long story"}).json()["text"]
    for how in ({"headers": {"Accept": "text/event-stream"}}, {"params": {"stream": "true"}}):
        with http.stream("POST", "/apis/summarize", json={"text": "a long story"}, **how) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert answer.headers["x-tollway-prompt-version"] == "1"
            events = events_of(answer.read().decode())
        kinds = [kind for kind, _ in events]
        assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) > 2
        done = events[-1][1]
        assert "".join(data["text"] for _, data in events[:-1]) == done["text"] == whole
        assert done["version"] == 1 and done["usage"]["completion_tokens"] > 0


def test_an_api_with_an_output_schema_does_not_stream(http: httpx.Client) -> None:
    answer = http.post(
        "/apis/sentiment", json={"text": "fine"}, headers={"Accept": "text/event-stream"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "stream"
