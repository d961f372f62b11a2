"""What the rate-limit and budget tests share: a gateway over the mock with limits, parallel
calls counted by status, and a throwaway redis-server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateways import CLIENT_KEY, UPSTREAM_KEY
from servers import HOST, Process, free_port, start_gateway

SECOND_KEY = "sk-test-second"


def limits_config(mock: Process, **sections: Any) -> dict[str, Any]:
    """Models on the mock (`slow` answers after 1.5 s, so that calls overlap), two keys, and
    the given `rate_limits` / `budgets` sections."""
    from tollway.config.compile import hash_key

    provider = {
        "type": "openai_compatible",
        "api_key_env": "MOCK_KEY",
        "base_url": mock.url + "/v1",
    }
    return {
        "server": {"drain_timeout_s": 5},
        "providers": {"mock": provider},
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "mock"}]},
            "slow": {"deployments": [{"provider": "mock", "model": "gpt-4o-mini~latency_ms=1500"}]},
        },
        "keys": [
            {"name": "tests", "key_sha256": hash_key(CLIENT_KEY)},
            {"name": "second", "key_sha256": hash_key(SECOND_KEY)},
        ],
        **sections,
    }


def limited_gateway(
    workdir: Path,
    mock: Process,
    *extra: str,
    workers: int = 2,
    env: dict[str, str] | None = None,
    **sections: Any,
) -> Process:
    return start_gateway(
        workdir,
        limits_config(mock, **sections),
        *extra,
        env={"MOCK_KEY": UPSTREAM_KEY, **(env or {})},
        workers=workers,
    )


@dataclass
class Results:
    statuses: Counter[int] = field(default_factory=Counter)
    answers: list[httpx.Response] = field(default_factory=list)
    slowest_s: float = 0.0

    def of(self, status: int) -> list[httpx.Response]:
        return [r for r in self.answers if r.status_code == status]


def chat(model: str = "gpt-4o-mini", max_tokens: int = 20, text: str = "hello") -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }


def fire(
    urls: list[str],
    count: int,
    body: dict[str, Any],
    key: str = CLIENT_KEY,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> Results:
    """`count` calls at once, each on a connection of its own (so that every worker of every
    gateway gets some), spread over `urls` in turn."""

    async def run() -> Results:
        results = Results()
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
        sent = {"authorization": f"Bearer {key}", **(headers or {})}
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(i: int) -> httpx.Response:
                started = time.monotonic()
                response = await client.post(urls[i % len(urls)] + path, json=body, headers=sent)
                results.slowest_s = max(results.slowest_s, time.monotonic() - started)
                return response

            for response in await asyncio.gather(*(one(i) for i in range(count))):
                results.statuses[response.status_code] += 1
                results.answers.append(response)
        return results

    return asyncio.run(run())


class RedisServer:
    """A redis-server of the tests' own on a free port of 127.0.0.1, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.workdir = workdir
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host=HOST, port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def client(self) -> Any:
        import redis

        return redis.Redis(host=HOST, port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
