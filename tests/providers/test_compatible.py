"""The OpenAI-compatible family: each type reaches its upstream the right way, and its quirks
(renamed, dropped and refused parameters, missing endpoints) apply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tollway.providers.compatible import FAMILY
from tollway.testing import mock_openai as wire

from gateways import CLIENT_KEY, UPSTREAM_KEY, keyed_gateway
from servers import Process, get_json

QUESTION = "Name three colours."


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process) -> Iterator[Process]:
    providers: dict[str, Any] = {
        name: {"type": name, "base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
        for name in FAMILY
    }
    providers["perplexity"]["base_url"] = mock.url  # Perplexity's API has no /v1 prefix
    providers["azure"] = {
        "type": "azure",
        "base_url": mock.url,
        "api_version": "2024-10-21",
        "api_key_env": "MOCK_KEY",
    }
    process = keyed_gateway(
        workdir, providers, {f"{name}-chat": (name, "m-" + name) for name in providers}
    )
    yield process
    process.stop()


@pytest.fixture
def oai(gateway: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def last_request(mock: Process) -> dict[str, Any]:
    return get_json(mock.url + "/_mock/requests")[-1]


@pytest.mark.parametrize("name", [*sorted(FAMILY), "azure"])
def test_each_type_serves_both_sdks(
    gateway: Process, oai: openai.OpenAI, mock: Process, name: str
) -> None:
    expected = " ".join(wire.reply_words(QUESTION, 50))
    reply = oai.chat.completions.create(
        model=f"{name}-chat", messages=[{"role": "user", "content": QUESTION}]
    )
    assert reply.choices[0].message.content == expected
    seen = last_request(mock)
    if name == "azure":
        assert seen["path"] == "/openai/deployments/m-azure/chat/completions"
        assert seen["headers"]["api-key"] == UPSTREAM_KEY
        assert "authorization" not in seen["headers"]
    else:
        assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert seen["body"]["model"] == "m-" + name
    chunks = list(
        oai.chat.completions.create(
            model=f"{name}-chat", stream=True, messages=[{"role": "user", "content": QUESTION}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    ant = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    message = ant.messages.create(
        model=f"{name}-chat", max_tokens=100, messages=[{"role": "user", "content": QUESTION}]
    )
    assert message.content[0].text == expected


def test_mistral_renames_and_drops(oai: openai.OpenAI, mock: Process) -> None:
    oai.chat.completions.create(
        model="mistral-chat",
        seed=42,
        user="u",
        max_completion_tokens=9,
        messages=[{"role": "user", "content": QUESTION}],
    )
    body = last_request(mock)["body"]
    assert body["random_seed"] == 42 and "seed" not in body
    assert body["max_tokens"] == 9 and "max_completion_tokens" not in body
    assert "user" not in body


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        ("groq-chat", {"n": 2}, "n"),
        ("groq-chat", {"logprobs": True}, "logprobs"),
        ("perplexity-chat", {"stop": ["x"]}, "stop"),
        ("deepseek-chat", {"logit_bias": {"1": 1}}, "logit_bias"),
    ],
)
def test_refused_parameters(
    oai: openai.OpenAI, model: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}], **extra
        )
    assert (info.value.param, info.value.code) == (param, "unsupported_parameter")


@pytest.mark.parametrize("model", ["groq-chat", "deepseek-chat", "perplexity-chat"])
def test_missing_endpoints_are_refused(oai: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.embeddings.create(model=model, input="x")
    assert info.value.code == "unsupported_endpoint"
