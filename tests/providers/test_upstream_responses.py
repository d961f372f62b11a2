"""Responses kept by a provider with a Responses API of its own (the calls pass through): the
gateway keeps whose each id is and where, so that retrieve, input items and delete reach that
provider for the id's owner only, a chain continues at the provider that keeps it (a model
with deployments at two providers), another app's id is refused before any provider sees it,
and a conversation can move between a model the gateway keeps state for and one whose
provider keeps its own; in one node's file and in Redis."""

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


def config_for(mock: Process, mock_b: Process) -> dict[str, Any]:
    provider = {"base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
    return {
        "providers": {
            "anthropic": {"type": "anthropic", **provider},
            "openai": {"type": "openai_compatible", **provider},
            "openai-b": {
                "type": "openai_compatible",
                "base_url": mock_b.url + "/v1",
                "api_key_env": "MOCK_KEY",
            },
        },
        "models": {
            "claude": {"deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
            "gpt": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]},
            # Two providers, each keeping the responses made there.
            "gpt-two": {
                "deployments": [
                    {"provider": "openai", "model": "gpt-4o"},
                    {"provider": "openai-b", "model": "gpt-4o"},
                ],
                "routing": {"strategy": "round_robin"},
            },
            "gpt-b": {"deployments": [{"provider": "openai-b", "model": "gpt-4o"}]},
        },
        "keys": [
            {"name": "tests", "key_sha256": hash_key(CLIENT_KEY)},
            {"name": "other", "key_sha256": hash_key(OTHER_KEY)},
        ],
    }


@pytest.fixture(scope="module", params=["node-file", "redis"])
def gateway(
    request: pytest.FixtureRequest,
    workdir: Path,
    mock: Process,
    mock_b: Process,
    redis: RedisServer,
) -> Iterator[Process]:
    extra = ["--redis", redis.url] if request.param == "redis" else []
    process = start_gateway(
        workdir, config_for(mock, mock_b), *extra, env={"MOCK_KEY": UPSTREAM_KEY}, workers=2
    )
    yield process
    process.stop()


@pytest.fixture
def client(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def other(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=OTHER_KEY, max_retries=0)


def last_request(mock: Process) -> dict[str, Any]:
    seen: dict[str, Any] = get_json(mock.url + "/_mock/requests")[-1]
    return seen


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


@pytest.mark.parametrize("stream", [False, True])
def test_retrieve_input_items_and_delete_reach_the_provider_that_keeps_it(
    client: openai.OpenAI, mock: Process, stream: bool
) -> None:
    if stream:
        with client.responses.stream(model="gpt", input="keep this one") as events:
            made = events.get_final_response()
    else:
        made = client.responses.create(model="gpt", input="keep this one")
    assert made.id.startswith("resp_mock")  # the provider's own id, passed through
    got = client.responses.retrieve(made.id)
    assert last_request(mock)["path"] == f"/v1/responses/{made.id}"
    assert last_request(mock)["method"] == "GET"
    assert got.id == made.id and got.output_text == made.output_text
    items = client.responses.input_items.list(made.id)
    assert [i.model_dump()["content"][0]["text"] for i in items.data] == ["keep this one"]
    deleted = client.responses.delete(made.id)
    assert deleted is None  # the SDK returns nothing for a 200
    assert last_request(mock)["method"] == "DELETE"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_another_app_never_reaches_a_response_it_does_not_own(
    client: openai.OpenAI, other: openai.OpenAI, mock: Process
) -> None:
    mine = client.responses.create(model="gpt", input="a secret plan")
    before = requests_seen(mock)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    # Continuing it would have the provider answer from the owner's conversation.
    with pytest.raises(openai.BadRequestError) as info:
        other.responses.create(model="gpt", input="and then?", previous_response_id=mine.id)
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"
    assert requests_seen(mock) == before  # none of it reached the provider
    assert client.responses.retrieve(mine.id).output_text == mine.output_text


def test_a_chain_continues_at_the_provider_that_keeps_it(
    client: openai.OpenAI, mock: Process, mock_b: Process
) -> None:
    made = [client.responses.create(model="gpt-two", input=f"start {n}") for n in range(4)]
    assert len({r.id for r in made}) == 4
    on_a, on_b = requests_seen(mock), requests_seen(mock_b)
    # Each provider keeps only its own: a continuation sent to the other would be a 400.
    for response in made:
        follow = client.responses.create(
            model="gpt-two", input="go on", previous_response_id=response.id
        )
        assert follow.previous_response_id == response.id
    continued_a = requests_seen(mock) - on_a
    continued_b = requests_seen(mock_b) - on_b
    assert continued_a == continued_b == 2  # round robin made two at each
    # A model with no deployment at the provider that keeps it cannot continue it.
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="x", previous_response_id=made[0].id)
    assert "kept by provider" in info.value.message


def test_a_model_at_one_provider_cannot_continue_a_response_kept_at_another(
    client: openai.OpenAI, mock_b: Process
) -> None:
    made = client.responses.create(model="gpt", input="made at the first")
    before = requests_seen(mock_b)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-b", input="x", previous_response_id=made.id)
    assert "kept by provider `openai`" in info.value.message
    assert requests_seen(mock_b) == before


def test_a_response_kept_by_the_gateway_continues_on_a_model_with_its_own_api(
    client: openai.OpenAI, mock: Process
) -> None:
    first = client.responses.create(model="claude", input="my name is Ada")
    follow = client.responses.create(
        model="gpt", input="what is my name?", previous_response_id=first.id
    )
    # The gateway keeps this chain: the whole of it went to the provider, translated.
    seen = last_request(mock)
    assert seen["path"] == "/v1/chat/completions"
    sent = [text_of(m) for m in seen["body"]["messages"]]
    assert sent[0] == "my name is Ada" and sent[-1] == "what is my name?"
    assert not follow.id.startswith("resp_mock")
    assert client.responses.retrieve(follow.id).previous_response_id == first.id


def test_a_gateway_conversation_on_a_model_with_its_own_api(
    client: openai.OpenAI, mock: Process
) -> None:
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "remember: blue"}]
    )
    answer = client.responses.create(
        model="gpt", input="what colour?", conversation=conversation.id
    )
    seen = last_request(mock)
    assert seen["path"] == "/v1/chat/completions"
    assert [text_of(m) for m in seen["body"]["messages"]] == ["remember: blue", "what colour?"]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [i.type for i in items] == ["message", "message", "message"]
    assert items[-1].model_dump()["content"][0]["text"] == answer.output_text


def test_a_response_not_stored_is_not_kept(client: openai.OpenAI) -> None:
    made = client.responses.create(model="gpt", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
