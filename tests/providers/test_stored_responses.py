"""Responses the gateway stores for models served without a Responses API of their own:
`previous_response_id` chains, retrieve, delete and input items with the `openai` SDK, each
app's (here: each key's) responses invisible to every other, and chains whose turns land on
different workers; the same with the state in Redis (`--redis`), where turns may also land on
different nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY
from limits_helpers import RedisServer
from servers import Process, get_json, requests_seen, start_gateway

OTHER_KEY = "tw-another-client-key-0123456789"


def config_for(mock: Process) -> dict[str, Any]:
    provider = {"base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
    return {
        "providers": {
            "anthropic": {"type": "anthropic", **provider},
            "openai": {"type": "openai_compatible", **provider},
        },
        "models": {
            "claude": {"deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
            "gpt": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]},
        },
        "keys": [
            {"name": "tests", "key_sha256": hash_key(CLIENT_KEY)},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY)},
        ],
    }


@pytest.fixture(scope="module", params=["node-file", "redis"])
def gateway(
    request: pytest.FixtureRequest, workdir: Path, mock: Process, redis: RedisServer
) -> Iterator[Process]:
    extra = ["--redis", redis.url] if request.param == "redis" else []
    # Two workers: a chain's turns land on either, and find each other's responses.
    process = start_gateway(
        workdir, config_for(mock), *extra, env={"MOCK_KEY": UPSTREAM_KEY}, workers=2
    )
    yield process
    process.stop()


@pytest.fixture
def client(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def other(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=OTHER_KEY, max_retries=0)


def last_body(mock: Process) -> dict[str, Any]:
    body: dict[str, Any] = get_json(mock.url + "/_mock/requests")[-1]["body"]
    return body


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for m in messages:
        content = m["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        out.append((m["role"], text))
    return out


def test_a_follow_up_sends_only_what_is_new(client: openai.OpenAI, mock: Process) -> None:
    first = client.responses.create(
        model="claude", input="My name is Ada.", instructions="Be kind."
    )
    assert first.store is True and first.previous_response_id is None
    second = client.responses.create(
        model="claude", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id and second.id != first.id
    # The provider got the whole conversation; instructions are not carried over.
    body = last_body(mock)
    assert "system" not in body
    assert texts(body["messages"]) == [
        ("user", "My name is Ada."),
        ("assistant", first.output_text),
        ("user", "What is my name?"),
    ]
    # Retrieved as it was answered.
    again = client.responses.retrieve(second.id)
    assert (again.id, again.status, again.output_text) == (
        second.id,
        "completed",
        second.output_text,
    )
    assert again.previous_response_id == first.id
    items = client.responses.input_items.list(second.id)
    assert [(i.type, i.role) for i in items.data] == [  # type: ignore[union-attr]
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items.data[0].content[0].text == "What is my name?"  # type: ignore[union-attr]
    assert all(i.id for i in items.data)
    ascending = client.responses.input_items.list(second.id, order="asc", limit=2)
    assert ascending.data[0].content[0].text == "My name is Ada."  # type: ignore[union-attr]
    assert ascending.has_more is True
    rest = client.responses.input_items.list(second.id, order="asc", after=ascending.last_id)
    assert [i.id for i in rest.data] == [items.data[0].id] and rest.has_more is False


def test_a_tool_loop_follows_its_responses(client: openai.OpenAI, mock: Process) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    first = client.responses.create(model="claude", input="weather?", tools=[tool])  # type: ignore[list-item]
    [call] = first.output
    assert call.type == "function_call"
    second = client.responses.create(
        model="claude",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[tool],  # type: ignore[list-item]
    )
    # The mock answers a tool result only when it answers the call before it, by id.
    assert second.output_text == "tool said: sunny"


def test_a_streamed_response_is_stored_as_it_ended(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="claude", input="hi", stream=True))
    final = events[-1].response  # type: ignore[union-attr]
    assert events[0].response.id == final.id  # type: ignore[union-attr]
    stored = client.responses.retrieve(final.id)
    assert stored.status == "completed" and stored.output_text == final.output_text


def test_deleted_and_unstored_responses_are_gone(client: openai.OpenAI) -> None:
    kept = client.responses.create(model="claude", input="hi")
    deleted = client.responses.delete(kept.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(kept.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="and?", previous_response_id=kept.id)
    assert (info.value.param, info.value.code) == (
        "previous_response_id",
        "previous_response_not_found",
    )
    unstored = client.responses.create(model="claude", input="hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_another_key_sees_nothing(
    client: openai.OpenAI, other: openai.OpenAI, mock: Process
) -> None:
    mine = client.responses.create(model="claude", input="secret plans")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    before = requests_seen(mock)
    with pytest.raises(openai.BadRequestError):
        other.responses.create(model="claude", input="go on", previous_response_id=mine.id)
    assert requests_seen(mock) == before
    # Still there for its owner.
    assert client.responses.retrieve(mine.id).output_text == mine.output_text


def test_a_long_chain_across_workers(client: openai.OpenAI, mock: Process) -> None:
    """Each turn follows the one just answered, at once: whichever worker takes it finds it
    (its end is written just after its answer went out)."""
    previous = None
    for turn in range(12):
        response = client.responses.create(
            model="claude", input=f"turn {turn}", previous_response_id=previous
        )
        previous = response.id
    users = [text for role, text in texts(last_body(mock)["messages"]) if role == "user"]
    assert users == [f"turn {turn}" for turn in range(12)]


def test_bad_ids_and_paths(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="x", previous_response_id=7)  # type: ignore[arg-type]
    assert info.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        client.get("/responses/resp_x/other", cast_to=object)
    first = client.responses.create(model="claude", input="hi")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.input_items.list(first.id, limit=500)
    assert info.value.param == "limit"


def test_two_nodes_on_one_redis_share_responses_and_conversations(
    workdir: Path, mock: Process, redis: RedisServer
) -> None:
    """A cluster: each turn goes to the other node; both find what the other kept."""
    nodes = [
        start_gateway(
            workdir, config_for(mock), "--redis", redis.url, env={"MOCK_KEY": UPSTREAM_KEY}
        )
        for _ in range(2)
    ]
    try:
        clients = [
            openai.OpenAI(base_url=n.url + "/v1", api_key=CLIENT_KEY, max_retries=0) for n in nodes
        ]
        previous = None
        for turn in range(6):
            previous = (
                clients[turn % 2]
                .responses.create(
                    model="claude", input=f"turn {turn}", previous_response_id=previous
                )
                .id
            )
        assert clients[0].responses.retrieve(previous).previous_response_id is not None
        items = clients[1].responses.input_items.list(previous, limit=100).data
        assert len(items) == 11  # six questions, five answers before the last
        conversation = clients[0].conversations.create()
        for turn in range(4):
            clients[turn % 2].responses.create(
                model="claude", conversation=conversation.id, input=f"c{turn}"
            )
        listed = clients[1].conversations.items.list(conversation.id, limit=100).data
        assert len(listed) == 8
        assert clients[1].conversations.retrieve(conversation.id).model_dump()["version"] == 9
        with pytest.raises(openai.ConflictError):
            clients[0].conversations.items.create(
                conversation.id,
                items=[{"type": "message", "role": "user", "content": "x"}],
                extra_headers={"If-Match": '"8"'},
            )
    finally:
        for node in nodes:
            node.stop()
