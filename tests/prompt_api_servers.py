"""A gateway serving prompt APIs from its store, declared with `tollway apply`: a team's prompt
services (one per kind of test), an app subscribed to each, and the mock provider behind them.
Shared by the prompt API suites."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tollway.config.compile import hash_key

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import Process, free_port, start_gateway

ADMIN_TOKEN = "tollway-test-admin-token-0123456789"
SENTIMENT_INPUT = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
        "language": {"type": "string", "enum": ["en", "fr"]},
    },
    "required": ["text"],
    "additionalProperties": False,
}
SENTIMENT_OUTPUT = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "score": {"type": "number"},
    },
    "required": ["label", "score"],
    "additionalProperties": False,
}


def prompt(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Give the sentiment of the user's text, as JSON."},
            {"role": "user", "content": "Language: {{ language }}. Text: {{ text }}"},
        ],
        "input_schema": SENTIMENT_INPUT,
        "output_schema": SENTIMENT_OUTPUT,
        "model": model,
        "parameters": {"temperature": 0},
        **extra,
    }


def declared(mock: Process) -> dict[str, Any]:
    summarize = {
        "messages": [{"role": "user", "content": "Summarise in one line: {{ text }}"}],
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "model": "gpt",
    }
    return {
        "providers": {
            "mock": {
                "type": "openai_compatible",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            },
            "claude": {
                "type": "anthropic",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            },
        },
        "models": {
            "gpt": {"deployments": [{"provider": "mock", "model": "gpt-4o-mini"}]},
            "claude": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "sloppy": {"deployments": [{"provider": "mock", "model": "gpt-4o-mini~json_slip"}]},
            # For agents that reach the prompt APIs over MCP: this model calls the MCP tool
            # `summarize` (as Claude Code names it), the other answers in text.
            "agent": {
                "deployments": [
                    {
                        "provider": "claude",
                        "model": "claude-sonnet-4-5~tool=mcp__tollway__summarize",
                    }
                ]
            },
            "agent-talk": {
                "deployments": [{"provider": "claude", "model": "claude-sonnet-4-5~tool=none"}]
            },
        },
        "teams": {"ml": {}},
        "apps": {"ml": {"bot": {"keys": [{"name": "prod", "key_sha256": hash_key(CLIENT_KEY)}]}}},
        "services": {
            "ml": {
                "sentiment": {
                    "kind": "prompt",
                    "route_prefix": "/apis/sentiment",
                    "versions": {1: {"status": "published", "prompt": prompt("gpt")}},
                },
                "sentiment-claude": {
                    "kind": "prompt",
                    "route_prefix": "/apis/sentiment-claude",
                    "versions": {1: {"status": "published", "prompt": prompt("claude")}},
                },
                "sloppy": {
                    "kind": "prompt",
                    "route_prefix": "/apis/sloppy",
                    "versions": {1: {"status": "published", "prompt": prompt("sloppy")}},
                },
                "summarize": {
                    "kind": "prompt",
                    "route_prefix": "/apis/summarize",
                    "versions": {1: {"status": "published", "prompt": summarize}},
                },
                "agents": {
                    "kind": "ai",
                    "route_prefix": "/agents",
                    "versions": {1: {"status": "published", "models": ["agent", "agent-talk"]}},
                },
                # An A/B test: version 2 takes 30% of the calls.
                "ab": {
                    "kind": "prompt",
                    "route_prefix": "/apis/ab",
                    "versions": {
                        1: {"status": "published", "prompt": summarize},
                        2: {
                            "status": "canary",
                            "weight": 30,
                            "prompt": {
                                **summarize,
                                "messages": [{"role": "user", "content": "In brief: {{ text }}"}],
                            },
                        },
                    },
                },
            }
        },
        "subscriptions": [
            {"app": "ml/bot", "service": f"ml/{name}", "status": "approved"}
            for name in ("sentiment", "sentiment-claude", "sloppy", "summarize", "ab", "agents")
        ],
    }


def apply(
    workdir: Path, data_dir: Path, config: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    path = workdir / f"declared-{data_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "MOCK_KEY": UPSTREAM_KEY}
    return subprocess.run(
        [sys.executable, "-m", "tollway", "apply", str(path), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def start_declared_gateway(
    workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None
) -> Process:
    """A gateway of two workers on a store of its own, which `tollway apply` made from
    `config` (the admin API on its admin port, with ADMIN_TOKEN)."""
    data_dir = workdir / f"declared-store-{free_port()}"
    done = apply(workdir, data_dir, config)
    assert done.returncode == 0, done.stderr
    return start_gateway(
        workdir,
        None,
        "--data-dir",
        str(data_dir),
        env={"TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})},
        workers=2,
    )


def start_prompt_gateway(workdir: Path, mock: Process) -> Process:
    return start_declared_gateway(workdir, declared(mock), {"MOCK_KEY": UPSTREAM_KEY})


def record_of(gateway: Process, request_id: str) -> dict[str, Any]:
    """The call's record, once the recorder has written it."""
    return records(gateway, request_id=request_id)[0]


def records(gateway: Process, **wanted: Any) -> list[dict[str, Any]]:
    """The call records the admin API finds for `wanted` (its filters), once the recorder
    has written at least one."""
    url = f"http://127.0.0.1:{gateway.admin_port}/admin/v1/analytics/records"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = httpx.get(url, params=wanted, headers=headers).json()["items"]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no record of {wanted}")
