"""Context fitting set by a service for the models it grants: a kept conversation called
through the service's prefix is fitted as the service's version says; the same model called
outside the service keeps its own settings (here: none, so nothing is left out). Declared with
`tollway apply`, served from the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY
from prompt_api_servers import apply, start_declared_gateway
from servers import Process


def declared(mock: Process, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "providers": {
            "anthropic": {
                "type": "anthropic",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            }
        },
        "models": {
            "claude": {"deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}
        },
        "teams": {"ml": {}},
        "apps": {"ml": {"bot": {"keys": [{"name": "prod", "key_sha256": hash_key(CLIENT_KEY)}]}}},
        "services": {
            "ml": {
                "chat": {
                    "kind": "ai",
                    "route_prefix": "/chat",
                    "versions": {1: {"status": "published", "models": ["claude"], **context}},
                }
            }
        },
        "subscriptions": [{"app": "ml/bot", "service": "ml/chat", "status": "approved"}],
    }


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    fitted = {"context": {"claude": {"max_input_tokens": 700, "keep_first_turns": 1}}}
    process = start_declared_gateway(workdir, declared(mock, fitted), {"MOCK_KEY": UPSTREAM_KEY})
    yield process
    process.stop()


def chain(client: openai.OpenAI, turns: int) -> Any:
    previous = None
    padding = " word" * 80
    for turn in range(turns):
        raw = client.responses.with_raw_response.create(
            model="claude", input=f"turn {turn}{padding}", previous_response_id=previous
        )
        previous = raw.parse().id
    return raw


def test_a_service_fits_its_models_as_its_version_says(gateway: Process) -> None:
    through_service = openai.OpenAI(
        base_url=gateway.url + "/chat/v1", api_key=CLIENT_KEY, max_retries=0
    )
    last = chain(through_service, 8)
    assert int(last.headers["x-tollway-context-omitted-items"]) > 0
    tokens_sent, whole = (int(n) for n in last.headers["x-tollway-context-tokens"].split("/"))
    assert tokens_sent <= 700 < whole
    # The model outside the service: its own settings (no budget below its window).
    direct = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    last = chain(direct, 8)
    assert "x-tollway-context-omitted-items" not in last.headers


def test_a_service_context_must_name_its_models_and_known_summary_models(
    workdir: Path, mock: Process
) -> None:
    stranger = {"context": {"gpt": {"max_input_tokens": 500}}}
    done = apply(workdir, workdir / "bad-store-1", declared(mock, stranger))
    assert done.returncode != 0 and "does not grant" in done.stderr
    unknown = {"context": {"claude": {"summary_model": "nowhere"}}}
    done = apply(workdir, workdir / "bad-store-2", declared(mock, unknown))
    assert done.returncode != 0 and "unknown model 'nowhere'" in done.stderr
