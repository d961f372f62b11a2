"""Conversations kept by the gateway, with the `openai` SDK's `conversations` client: items,
metadata, responses made in a conversation (the client sends only what is new), versions
that keep two writers from interleaving silently (409), forks, and each key's conversations
invisible to every other."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tollway.config.compile import hash_key
from tollway.proxy.handlers.summaries import INSTRUCTIONS, SUMMARY_LEAD

from gateways import CLIENT_KEY, UPSTREAM_KEY
from limits_helpers import RedisServer
from servers import Process, get_json, requests_seen, start_gateway

OTHER_KEY = "tw-another-client-key-0123456789"


def gateway_config_for(mock: Process) -> dict[str, Any]:
    provider = {"base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
    return {
        "providers": {
            "anthropic": {"type": "anthropic", **provider},
            "openai": {"type": "openai_compatible", **provider},
        },
        "models": {
            "claude": {"deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
            # A small input budget: kept conversations are fitted to it.
            "claude-small": {
                "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}],
                "context": {"max_input_tokens": 700, "keep_first_turns": 1},
            },
            # The turns left out are summarised by a cheaper model.
            "claude-summarized": {
                "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}],
                "context": {
                    "max_input_tokens": 1000,
                    "keep_first_turns": 1,
                    "summary_model": "mini",
                    "summary_tokens": 600,
                },
            },
            "mini": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]},
            "claude-slow": {
                "deployments": [
                    {"provider": "anthropic", "model": "claude-sonnet-4-5~latency_ms=1500"}
                ]
            },
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
    config = gateway_config_for(mock)
    extra = ["--redis", redis.url] if request.param == "redis" else []
    process = start_gateway(workdir, config, *extra, env={"MOCK_KEY": UPSTREAM_KEY}, workers=2)
    yield process
    process.stop()


@pytest.fixture
def client(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def other(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=OTHER_KEY, max_retries=0)


def version(client: openai.OpenAI, conversation_id: str) -> int:
    raw = client.conversations.with_raw_response.retrieve(conversation_id)
    etag = raw.headers["etag"]
    assert raw.parse().model_dump()["version"] == int(etag.strip('"'))
    return int(etag.strip('"'))


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each text block with its role (Anthropic's API has consecutive user turns merged)."""
    out = []
    for m in messages:
        content = m["content"]
        blocks = [content] if isinstance(content, str) else [b.get("text", "") for b in content]
        out.extend((m["role"], text) for text in blocks)
    return out


def test_responses_in_a_conversation_send_only_what_is_new(
    client: openai.OpenAI, mock: Process
) -> None:
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}],
        metadata={"topic": "names"},
    )
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "names"}
    first = client.responses.create(model="claude", conversation=conversation.id, input="Hi!")
    assert first.conversation is not None and first.conversation.id == conversation.id
    second = client.responses.create(
        model="claude", conversation={"id": conversation.id}, input="What is my name?"
    )
    body = get_json(mock.url + "/_mock/requests")[-1]["body"]
    assert texts(body["messages"]) == [
        ("user", "My name is Ada."),
        ("user", "Hi!"),
        ("assistant", first.output_text),
        ("user", "What is my name?"),
    ]
    items = client.conversations.items.list(conversation.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [  # type: ignore[union-attr]
        ("message", "user"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert items.data[-1].content[0].text == second.output_text  # type: ignore[union-attr]
    # Created (1), two turns of two writes each (input, then output).
    assert version(client, conversation.id) == 5


def test_items_metadata_and_versions(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    assert version(client, conversation.id) == 1
    added = client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "user", "content": "one"},
            {"type": "message", "role": "user", "content": "two"},
        ],
    )
    assert [i.content[0].text for i in added.data] == ["one", "two"]  # type: ignore[union-attr]
    one = client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert one.content[0].text == "one"  # type: ignore[union-attr]
    updated = client.conversations.update(conversation.id, metadata={"stage": "draft"})
    assert updated.metadata == {"stage": "draft"}
    assert version(client, conversation.id) == 3
    client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
    left = client.conversations.items.list(conversation.id)
    assert [i.content[0].text for i in left.data] == ["two"]  # type: ignore[union-attr]
    assert version(client, conversation.id) == 4
    # A write that states the version it extends: the current one lands, a stale one is 409.
    client.conversations.items.create(
        conversation.id,
        items=[{"type": "message", "role": "user", "content": "three"}],
        extra_headers={"If-Match": '"4"'},
    )
    with pytest.raises(openai.ConflictError) as info:
        client.conversations.items.create(
            conversation.id,
            items=[{"type": "message", "role": "user", "content": "lost?"}],
            extra_headers={"If-Match": '"4"'},
        )
    assert info.value.code == "conversation_conflict"
    assert info.value.response.headers["etag"] == '"5"'
    assert [i.content[0].text for i in client.conversations.items.list(conversation.id).data] == [  # type: ignore[union-attr]
        "three",
        "two",
    ]
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_a_write_while_a_response_is_being_made_is_409(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    done: list[Any] = []
    turn = threading.Thread(
        target=lambda: done.append(
            client.responses.create(model="claude-slow", conversation=conversation.id, input="a")
        )
    )
    turn.start()
    try:
        # The turn's input is in as soon as it begins.
        for _ in range(100):
            if client.conversations.items.list(conversation.id).data:
                break
            threading.Event().wait(0.02)
        with pytest.raises(openai.ConflictError):
            client.conversations.items.create(
                conversation.id, items=[{"type": "message", "role": "user", "content": "b"}]
            )
        with pytest.raises(openai.ConflictError):
            client.responses.create(model="claude", conversation=conversation.id, input="c")
    finally:
        turn.join(10)
    assert done and done[0].status == "completed"
    client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "b"}]
    )
    roles = [i.role for i in client.conversations.items.list(conversation.id, order="asc").data]  # type: ignore[union-attr]
    assert roles == ["user", "assistant", "user"]


def test_a_fork_keeps_the_items_up_to_one(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": "one"},
            {"type": "message", "role": "user", "content": "two"},
            {"type": "message", "role": "user", "content": "three"},
        ]
    )
    items = client.conversations.items.list(conversation.id, order="asc").data
    forked = client.post(
        f"/conversations/{conversation.id}/fork",
        body={"item_id": items[1].id},
        cast_to=dict,
    )
    kept = client.conversations.items.list(forked["id"], order="asc").data
    assert [i.content[0].text for i in kept] == ["one", "two"]  # type: ignore[union-attr]
    assert len(client.conversations.items.list(conversation.id).data) == 3


def test_another_key_sees_nothing(
    client: openai.OpenAI, other: openai.OpenAI, mock: Process
) -> None:
    mine = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "secret"}]
    )
    with pytest.raises(openai.NotFoundError):
        other.conversations.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.conversations.items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.conversations.items.create(
            mine.id, items=[{"type": "message", "role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        other.conversations.delete(mine.id)
    before = requests_seen(mock)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="claude", conversation=mine.id, input="and?")
    assert requests_seen(mock) == before
    assert version(client, mine.id) == 1


def test_bad_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.conversations.create(metadata={"n": 1})  # type: ignore[dict-item]
    assert info.value.param == "metadata"
    with pytest.raises(openai.BadRequestError) as info:
        client.conversations.create(
            items=[{"type": "message", "role": "user", "content": "x"}] * 21
        )  # type: ignore[list-item]
    assert info.value.param == "items"
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model="claude", conversation=conversation.id, previous_response_id="resp_1", input="x"
        )
    assert info.value.param == "conversation"
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.create(
            conversation.id,
            items=[{"type": "message", "role": "user", "content": "x"}],
            extra_headers={"If-Match": "yesterday"},
        )
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve("msg_nope", conversation_id=conversation.id)


def test_a_long_conversation_is_fitted_to_the_model_by_turns(
    client: openai.OpenAI, mock: Process
) -> None:
    """Each turn is ~100 tokens of question and ~75 of answer; the budget is 700: the first
    turn (kept by configuration) and the latest turns are sent, the ones between left out,
    and the answer says which; the conversation itself keeps everything."""
    conversation = client.conversations.create()
    padding = " word" * 80
    for turn in range(6):
        raw = client.responses.with_raw_response.create(
            model="claude-small", conversation=conversation.id, input=f"turn {turn}{padding}"
        )
    response = raw.parse()
    omitted = response.model_dump()["context"]["omitted_items"]
    assert int(raw.headers["x-tollway-context-omitted-items"]) == len(omitted) > 0
    sent = [
        text.split()[1]
        for role, text in texts(get_json(mock.url + "/_mock/requests")[-1]["body"]["messages"])
        if role == "user"
    ]
    assert sent[0] == "0" and sent[-1] == "5" and len(sent) < 6
    assert sent == sorted(sent)  # the latest turns, in order, after the first
    assert sent[1:] == [str(n) for n in range(6 - len(sent) + 1, 6)]
    items = client.conversations.items.list(conversation.id, order="asc", limit=100).data
    assert len(items) == 12
    assert set(omitted) <= {i.id for i in items}


def summary_requests(mock: Process) -> list[str]:
    """What the summary model was asked, oldest first."""
    return [
        r["body"]["messages"][1]["content"]
        for r in get_json(mock.url + "/_mock/requests")
        # Requests the mock refused before reading a body (another test file's, when the
        # mock is shared) carry none.
        if r["path"] == "/v1/chat/completions"
        and "body" in r
        and r["body"]["messages"][0] == {"role": "system", "content": INSTRUCTIONS}
    ]


def test_the_turns_left_out_are_summarised_once_each(client: openai.OpenAI, mock: Process) -> None:
    asked_before = len(summary_requests(mock))
    padding = " word" * 80
    previous = None
    responses = []
    for turn in range(7):
        raw = client.responses.with_raw_response.create(
            model="claude-summarized", input=f"turn {turn}{padding}", previous_response_id=previous
        )
        responses.append(raw)
        previous = raw.parse().id
    last = responses[-1]
    context = last.parse().model_dump()["context"]
    assert context["strategy"] == "summary" and context["summary"]["model"] == "mini"
    assert last.headers["x-tollway-context-summary"] == "made"
    # The model got the first turn, the summary after it, then the latest turns.
    body = get_json(mock.url + "/_mock/requests")[-1]["body"]
    assert SUMMARY_LEAD.strip() in json.dumps(body)
    sent = json.dumps(body["messages"])
    assert "turn 0" in sent and "turn 6" in sent and "turn 1 " not in sent
    asked = summary_requests(mock)[asked_before:]
    assert asked and "turn 1 " in asked[0] and "turn 0 " not in asked[0]
    # Later summaries take up the one before and add only what followed.
    assert all("Summary so far:" in prompt for prompt in asked[1:])
    assert all("turn 1 " not in prompt for prompt in asked[1:])
    # The same conversation again: its summary is cached, the summary model not asked.
    again = client.responses.with_raw_response.create(
        model="claude-summarized",
        input=f"turn 6{padding}",
        previous_response_id=responses[-2].parse().id,
    )
    assert again.headers["x-tollway-context-summary"] == "cached"
    assert len(summary_requests(mock)) == asked_before + len(asked)


def test_a_summary_is_a_recorded_call_of_the_app(workdir: Path, mock: Process) -> None:
    """With a store: the summary model's call has a record of its own, under the key of the
    call that needed it, with its tokens and its cost."""
    from sqlalchemy import func, select

    from tollway.store import open_store
    from tollway.store.metering_schema import call_records, rollups

    data = workdir / "summaries-recorded"
    config = gateway_config_for(mock)
    process = start_gateway(
        workdir,
        config,
        "--data-dir",
        str(data),
        env={"MOCK_KEY": UPSTREAM_KEY, "TOLLWAY_ADMIN_TOKEN": "t" * 32},
    )
    try:
        recorded = openai.OpenAI(base_url=process.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        previous = None
        for turn in range(7):
            previous = recorded.responses.create(
                model="claude-summarized",
                input=f"turn {turn}" + " word" * 80,
                previous_response_id=previous,
            ).id
    finally:
        process.stop()
    store = open_store(data_dir=str(data), apply_migrations=False)
    try:
        with store.read() as session:
            rows = session.execute(
                select(
                    call_records.c.model,
                    call_records.c.key_name,
                    call_records.c.api,
                    call_records.c.input_tokens,
                    call_records.c.cost,
                    call_records.c.context_saved_tokens,
                )
            ).all()
            rolled = session.execute(
                select(func.sum(rollups["minute"].c.context_saved_tokens))
            ).scalar_one()
    finally:
        store.close()
    summaries = [r for r in rows if r.model == "mini"]
    assert summaries and all(r.key_name == "tests" for r in summaries)
    assert all(r.input_tokens > 0 and r.cost is not None and r.cost > 0 for r in summaries)
    assert sum(1 for r in rows if r.model == "claude-summarized") == 7
    # What fitting saved, per call and in total (the analytics' rollups).
    saved = [r.context_saved_tokens for r in rows if r.model == "claude-summarized"]
    assert min(saved) == 0 and max(saved) > 0
    assert rolled == sum(r.context_saved_tokens for r in rows) > 0


def test_a_200_turn_conversation_fits_keeps_its_pinned_fact_and_summarises_sparingly(
    workdir: Path, mock: Process
) -> None:
    """Every turn fits the budget; the pinned fact is in every request after it; a summary
    is made only when what is left out changes (chunks of a quarter of the budget), and each
    answer says what was sent against what the whole conversation would have cost."""
    config = gateway_config_for(mock)
    config["models"]["claude-long"] = {
        "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}],
        "context": {
            "max_input_tokens": 2400,
            "keep_first_turns": 1,
            "summary_model": "mini",
            "summary_tokens": 400,
        },
    }
    process = start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY})
    try:
        long = openai.OpenAI(base_url=process.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        conversation = long.conversations.create()
        omitted_sets, sent_total, full_total, made = set(), 0, 0, 0
        fact = "FACT: the deploy key is K-42."
        for turn in range(200):
            content: Any = f"turn {turn}: " + "more words " * 10
            if turn == 20:
                content = [{"type": "message", "role": "user", "content": fact, "pinned": True}]
            raw = long.responses.with_raw_response.create(
                model="claude-long", conversation=conversation.id, input=content
            )
            context = raw.parse().model_dump().get("context")
            if context is not None:
                sent, full = map(int, raw.headers["x-tollway-context-tokens"].split("/"))
                assert sent <= 2400 - 400
                sent_total += sent
                full_total += full
                omitted_sets.add(tuple(context["omitted_items"]))
                # The header says whether the summary model was asked: the mock agrees.
                before_this_call = get_json(mock.url + "/_mock/requests")[-2]
                asked = before_this_call["body"].get("messages", [{}])[0].get("content")
                summarised = raw.headers["x-tollway-context-summary"] == "made"
                assert summarised == (asked == INSTRUCTIONS)
                made += summarised
            if turn > 20:
                assert fact in json.dumps(get_json(mock.url + "/_mock/requests")[-1]["body"])
        # One summary for each distinct set of turns left out, and far fewer than turns.
        assert made == len(omitted_sets) and 0 < made < 200 // 5
        assert full_total > 5 * sent_total  # what the fitting saved over the run
        print(f"200 turns: sent {sent_total} tokens, whole history {full_total}, {made} summaries")
    finally:
        process.stop()
