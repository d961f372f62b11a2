"""Realtime sessions through the gateway: the openai SDK's realtime client (and a plain
websockets client) against the mock provider's Realtime API, with key auth and limits at
connect, the provider's credentials and model name upstream, deployments tried in turn,
errors in OpenAI's format, and one call record per session with its summed usage and cost."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import websockets
from websockets.sync.client import connect

from call_records import stored_records
from tollway.config.compile import hash_key
from tollway.llm.catalog import Catalog, shipped

from gateways import CLIENT_KEY, UPSTREAM_KEY, recording_gateway
from servers import Process

TEXT_ONLY = {"type": "realtime", "output_modalities": ["text"]}
# The usage the first session's responses reported, for the records test at the end.
USAGES: list[Any] = []


def config(mock: Process) -> dict[str, Any]:
    compatible = {"type": "openai_compatible", "api_key_env": "MOCK_KEY"}
    return {
        "providers": {
            "mock": {**compatible, "base_url": mock.url + "/v1"},
            "down": {**compatible, "base_url": "http://127.0.0.1:9/v1"},
            "azure": {
                "type": "azure",
                "base_url": mock.url,
                "api_key_env": "MOCK_KEY",
                "api_version": "2025-04-01-preview",
            },
            "anthropic": {
                "type": "anthropic",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            },
        },
        "models": {
            "gpt-realtime": {"deployments": [{"provider": "mock"}]},
            "voice": {"deployments": [{"provider": "mock", "model": "gpt-realtime"}]},
            "voice-cut": {
                "deployments": [{"provider": "mock", "model": "gpt-realtime~cut_after=3"}]
            },
            "voice-failover": {
                # The unreachable deployment first (smooth weighted round-robin at 1000:1).
                "routing": {"strategy": "weighted"},
                "deployments": [
                    {"provider": "down", "model": "gpt-realtime", "weight": 1000},
                    {"provider": "mock", "model": "gpt-realtime", "weight": 1},
                ],
            },
            "voice-limited": {"deployments": [{"provider": "mock", "model": "gpt-realtime"}]},
            "voice-azure": {"deployments": [{"provider": "azure", "model": "my-realtime"}]},
            "claude-sonnet-4": {"deployments": [{"provider": "anthropic"}]},
        },
        "rate_limits": {"rules": [{"scope": "model", "match": ["voice-limited"], "concurrent": 1}]},
        "keys": [{"name": "tests", "key_sha256": hash_key(CLIENT_KEY)}],
    }


@pytest.fixture(scope="module")
def served(workdir: Path, mock: Process) -> Iterator[tuple[Process, Path]]:
    yield from recording_gateway(workdir, config(mock), "realtime")


@pytest.fixture(scope="module")
def client(served: tuple[Process, Path]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0].url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def ws_url(gateway: Process, model: str) -> str:
    return gateway.url.replace("http://", "ws://") + f"/v1/realtime?model={model}"


def converse(session: Any, text: str) -> tuple[str, Any]:
    """One user message and one response: the response's text and its usage."""
    session.conversation.item.create(
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
    )
    session.response.create()
    pieces = []
    for event in session:
        if event.type == "response.output_text.delta":
            pieces.append(event.delta)
        elif event.type == "error":
            raise AssertionError(event)
        elif event.type == "response.done":
            return "".join(pieces), event.response.usage
    raise AssertionError("the session ended before response.done")


def test_a_session_through_the_gateway(
    client: openai.OpenAI, mock: Process, served: tuple[Process, Path]
) -> None:
    with client.realtime.connect(
        model="voice", extra_headers={"x-request-id": "realtime-two"}
    ) as session:
        session.session.update(session=TEXT_ONLY)
        first_text, first = converse(session, "The tide comes in at noon.")
        second_text, second = converse(session, "And goes out at six.")
    assert first_text and second_text
    assert first.total_tokens > 0 and second.total_tokens > 0
    seen = [r for r in httpx.get(mock.url + "/_mock/requests").json() if "realtime" in r["path"]]
    upstream = seen[-1]
    assert "model=gpt-realtime" in upstream["query"] and "voice" not in upstream["query"]
    assert upstream["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_KEY not in str(upstream)
    USAGES[:] = [first, second]


def test_a_session_on_azure_goes_to_its_v1_realtime_endpoint(
    client: openai.OpenAI, mock: Process
) -> None:
    with client.realtime.connect(
        model="voice-azure", extra_headers={"x-request-id": "realtime-azure"}
    ) as session:
        session.session.update(session=TEXT_ONLY)
        text, usage = converse(session, "Is the ferry on time?")
    assert text and usage.total_tokens > 0
    seen = [r for r in httpx.get(mock.url + "/_mock/requests").json() if "realtime" in r["path"]]
    upstream = seen[-1]
    # Azure's realtime is on its v1 API: the deployment is the query's model, no api-version.
    assert upstream["path"] == "/openai/v1/realtime"
    assert upstream["query"] == "model=my-realtime"
    assert upstream["headers"]["api-key"] == UPSTREAM_KEY
    assert "authorization" not in upstream["headers"]
    assert CLIENT_KEY not in str(upstream)


def test_a_browser_presents_its_key_as_a_subprotocol(
    served: tuple[Process, Path], mock: Process
) -> None:
    """Browsers cannot set headers on a WebSocket: they carry the key in a subprotocol, as
    OpenAI's realtime API takes it. The gateway's key stays at the gateway."""
    offered = ["realtime", f"openai-insecure-api-key.{CLIENT_KEY}"]
    with connect(ws_url(served[0], "voice"), subprotocols=offered, open_timeout=10) as ws:
        assert ws.subprotocol == "realtime"
        assert '"session.created"' in str(ws.recv(timeout=10))
    upstream = [
        r for r in httpx.get(mock.url + "/_mock/requests").json() if "realtime" in r["path"]
    ][-1]
    assert upstream["headers"]["sec-websocket-protocol"] == "realtime"
    assert upstream["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_KEY not in str(upstream)
    key_only = [f"openai-insecure-api-key.{CLIENT_KEY}"]
    with connect(ws_url(served[0], "voice"), subprotocols=key_only, open_timeout=10) as ws:
        assert ws.subprotocol == key_only[0]
        assert '"session.created"' in str(ws.recv(timeout=10))
    wrong = ["realtime", "openai-insecure-api-key.not-a-key"]
    with pytest.raises(websockets.InvalidStatus) as refused:
        connect(ws_url(served[0], "voice"), subprotocols=wrong, open_timeout=10)
    assert refused.value.response.status_code == 401
    assert b"invalid_api_key" in refused.value.response.body


def test_refusals_at_connect_are_http_answers_in_openais_format(
    served: tuple[Process, Path],
) -> None:
    gateway = served[0]
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with pytest.raises(websockets.InvalidStatus) as no_key:
        connect(ws_url(gateway, "voice"), open_timeout=10)
    assert no_key.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as unknown:
        connect(ws_url(gateway, "no-such-model"), additional_headers=auth, open_timeout=10)
    assert unknown.value.response.status_code == 404
    with pytest.raises(websockets.InvalidStatus) as unsupported:
        connect(ws_url(gateway, "claude-sonnet-4"), additional_headers=auth, open_timeout=10)
    assert unsupported.value.response.status_code == 400
    assert b"unsupported_endpoint" in unsupported.value.response.body
    plain = httpx.get(gateway.url + "/v1/realtime?model=voice", headers=auth)
    assert plain.status_code == 426
    assert plain.json()["error"]["code"] == "websocket_required"
    no_model = httpx.get(
        gateway.url + "/v1/realtime",
        headers={
            **auth,
            "connection": "Upgrade",
            "upgrade": "websocket",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
        },
    )
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"


def test_a_failed_deployment_passes_the_session_to_the_next(served: tuple[Process, Path]) -> None:
    gateway = served[0]
    with connect(
        ws_url(gateway, "voice-failover"),
        additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        open_timeout=10,
    ) as ws:
        assert ws.response.headers["x-tollway-attempts"] == "2"
        assert ws.response.headers["x-tollway-deployment"].startswith("mock")
        created = ws.recv(timeout=10)
        assert '"session.created"' in str(created)


def test_a_concurrency_limit_holds_for_the_whole_session(served: tuple[Process, Path]) -> None:
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    url = ws_url(served[0], "voice-limited")
    with connect(url, additional_headers=auth, open_timeout=10) as held:
        held.recv(timeout=10)
        with pytest.raises(websockets.InvalidStatus) as refused:
            connect(url, additional_headers=auth, open_timeout=10)
        assert refused.value.response.status_code == 429
    # The slot is given back when the session ends (the gateway sees the close at once).
    done = threading.Event()
    for _ in range(50):
        try:
            with connect(url, additional_headers=auth, open_timeout=10) as again:
                again.recv(timeout=10)
                done.set()
                break
        except websockets.InvalidStatus:
            done.wait(0.1)
    assert done.is_set()


def test_a_session_the_provider_breaks_off_ends_for_the_client(client: openai.OpenAI) -> None:
    with (
        pytest.raises(websockets.ConnectionClosed),
        client.realtime.connect(
            model="voice-cut", extra_headers={"x-request-id": "realtime-cut"}
        ) as session,
    ):
        session.session.update(session=TEXT_ONLY)
        converse(session, "Tell me about the harbour.")


def test_each_session_is_one_record_with_its_summed_usage(served: tuple[Process, Path]) -> None:
    """Last in the module: the records of the sessions the tests above opened."""
    gateway, data = served
    usages = USAGES
    assert usages, "the first test of the module keeps its sessions' usage here"
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(60) == 0
    rows = stored_records(data)
    two = rows["realtime-two"]
    assert two.api == "openai.realtime" and two.model == "voice" and two.status == 101
    assert two.outcome == "completed"
    assert two.input_tokens == sum(u.input_tokens for u in usages)
    assert two.output_tokens == sum(u.output_tokens for u in usages)
    price = Catalog(shipped()).find("openai_compatible", "gpt-realtime")
    assert price is not None
    usage = {
        "prompt_tokens": two.input_tokens,
        "completion_tokens": two.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": sum(u.input_token_details.cached_tokens or 0 for u in usages),
            "audio_tokens": sum(u.input_token_details.audio_tokens or 0 for u in usages),
        },
        "completion_tokens_details": {
            "audio_tokens": sum(u.output_token_details.audio_tokens or 0 for u in usages)
        },
    }
    assert Decimal(two.cost) == price.cost(usage)
    assert rows["realtime-cut"].outcome == "upstream_error"
    azure = rows["realtime-azure"]
    assert azure.model == "voice-azure" and azure.outcome == "completed"
    assert azure.input_tokens > 0
    refused = [r for r in rows.values() if r.model == "voice-limited" and r.status == 429]
    assert refused and all(r.outcome == "refused" for r in refused)
