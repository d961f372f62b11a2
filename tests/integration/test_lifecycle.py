"""Streams under stress, shutdown, workers and the command line, against real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from gateways import CLIENT_KEY, UPSTREAM_KEY, gateway_config
from servers import (
    HOST,
    Process,
    free_port,
    get_json,
    read_until_closed,
    start_gateway,
    worker_pids,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def stream_request(model: str, *extra: str) -> bytes:
    body = json.dumps({"model": model, "stream": True, "messages": MESSAGES}).encode()
    head = [
        "POST /v1/chat/completions HTTP/1.1",
        f"Host: {HOST}",
        f"Authorization: Bearer {CLIENT_KEY}",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def last_stream(mock: Process) -> dict[str, object]:
    return get_json(mock.url + "/_mock/stats")["streams"][-1]


def wait_for(predicate: object, timeout_s: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_client_disconnect_cancels_the_upstream_stream(gateway: Process, mock: Process) -> None:
    with socket.create_connection((HOST, gateway.port), timeout=5) as sock:
        sock.sendall(stream_request("slow-stream"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert wait_for(lambda: last_stream(mock)["state"] == "active")
    # 40 chunks at 150 ms would take 6 s; the upstream sees its client go long before.
    assert wait_for(lambda: last_stream(mock)["state"] == "cancelled", 4.0)
    assert last_stream(mock)["chunks_sent"] < 30


def test_client_disconnect_cancels_a_pending_upstream_call(gateway: Process, mock: Process) -> None:
    before = get_json(mock.url + "/_mock/stats")["abandoned"]
    body = json.dumps({"model": "unhurried", "messages": MESSAGES}).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((HOST, gateway.port), timeout=5) as sock:
        sock.sendall(request)
        assert wait_for(
            lambda: (
                (get_json(mock.url + "/_mock/requests") or [{}])[-1].get("model")
                == "gpt-4o~latency_ms=1500"
            ),
            1.0,
        )
    # The mock would answer after 1.5 s; it sees its caller leave before that.
    assert wait_for(lambda: get_json(mock.url + "/_mock/stats")["abandoned"] == before + 1, 1.2)


def test_slow_client_applies_backpressure_to_the_upstream(gateway: Process, mock: Process) -> None:
    with socket.create_connection((HOST, gateway.port), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(stream_request("big-stream"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        # The client reads nothing more: the mock must stall, far short of its ~26 MB.
        assert wait_for(lambda: last_stream(mock)["bytes_sent"] > 0)
        time.sleep(1.5)
        first = last_stream(mock)["bytes_sent"]
        time.sleep(1.5)
        second = last_stream(mock)
        assert second["state"] == "active"
        assert second["bytes_sent"] == first, "upstream kept sending to a client not reading"
        total = 400 * 65536
        print(f"upstream stalled after {first} of {total} bytes")
        assert first < total / 2
        # Reading again drains everything, intact, to the end.
        data = read_until_closed(sock, 5)
    assert b"data: [DONE]" in data
    assert wait_for(lambda: last_stream(mock)["state"] == "completed")


def test_sigterm_lets_streams_finish_and_serves_queued_requests(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b), env={"MOCK_KEY": UPSTREAM_KEY})
    sock = socket.create_connection((HOST, gateway.port), timeout=15)
    # A stream of ~6 s, and behind it on the same connection a pipelined readiness probe.
    sock.sendall(stream_request("slow-stream") + b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    gateway.signal(signal.SIGTERM)
    # New connections are refused while the stream drains.
    assert wait_for(lambda: _refused(gateway.port), 3.0)
    data = read_until_closed(sock, 15)
    sock.close()
    assert gateway.wait(15) == 0
    gateway.stop()
    assert b"data: [DONE]" in data
    assert b"HTTP/1.1 503 " in data and b'{"status":"draining"}' in data
    assert "draining" in gateway.log()


def _refused(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return True
    return False


def test_multiple_workers_share_the_port_and_stop_together(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(
        workdir, gateway_config(mock, mock_b), env={"MOCK_KEY": UPSTREAM_KEY}, workers=2
    )
    try:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        for _ in range(10):
            # A fresh connection each time, so both workers take some.
            reply = client.with_options().chat.completions.create(model="echo", messages=MESSAGES)
            assert reply.choices[0].message.content == "hi"
        children = worker_pids(gateway)
        assert len(children) == 2
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(15) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        gateway.stop()


def test_a_crashed_worker_is_replaced(workdir: Path, mock: Process, mock_b: Process) -> None:
    gateway = start_gateway(
        workdir, gateway_config(mock, mock_b), env={"MOCK_KEY": UPSTREAM_KEY}, workers=2
    )
    try:
        children = worker_pids(gateway)
        subprocess.run(["kill", "-KILL", str(children[0])], check=True)

        def replaced() -> bool:
            now = worker_pids(gateway)
            return len(now) == 2 and children[0] not in now

        assert wait_for(replaced, 10)
        assert "starting another" in gateway.log()
        gateway.wait_ready()
    finally:
        gateway.stop()


# -- command line ------------------------------------------------------------------------------


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollway", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=30,
    )


def test_invalid_config_names_the_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  p:\n    base_ur: http://127.0.0.1:1/v1\n")
    result = run_cli("serve", "--config", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    assert "providers.p.base_ur: unknown field (did you mean 'base_url'?)" in result.stderr
    check = run_cli("check-config", str(path))
    assert check.returncode == 2
    assert "base_ur" in check.stderr


def test_missing_provider_key_variable_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(
        "providers:\n  p:\n    base_url: http://127.0.0.1:1/v1\n"
        "    api_key_env: TOLLWAY_TEST_UNSET_VAR\n"
    )
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert "TOLLWAY_TEST_UNSET_VAR is not set" in result.stderr


def test_open_gateway_refuses_a_public_address() -> None:
    result = run_cli(
        "serve",
        "--upstream",
        "http://127.0.0.1:1/v1",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--workers",
        "1",
    )
    assert result.returncode == 2
    assert "no client keys are configured" in result.stderr


def test_port_in_use_is_reported(mock: Process) -> None:
    result = run_cli(
        "serve", "--upstream", "http://127.0.0.1:1/v1", "--port", str(mock.port), "--workers", "2"
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{mock.port}" in result.stderr


def test_hash_key_matches_what_the_gateway_accepts() -> None:
    from tollway.config.compile import hash_key

    assert run_cli("hash-key", "sk-abc").stdout.strip() == hash_key("sk-abc")
    assert run_cli("hash-key", stdin="sk-abc\n").stdout.strip() == hash_key("sk-abc")


def test_zero_config_upstream_mode_with_client_key(workdir: Path, mock: Process) -> None:
    gateway = start_gateway(
        workdir,
        None,
        "--upstream",
        mock.url + "/v1",
        "--upstream-key-env",
        "UP_KEY",
        "--key",
        "sk-cli-key",
        env={"UP_KEY": UPSTREAM_KEY},
    )
    try:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-cli-key", max_retries=0)
        reply = client.chat.completions.create(model="any-model-name~echo", messages=MESSAGES)
        assert reply.model == "any-model-name"
        assert reply.choices[0].message.content == "hi"
        # Every upstream model is listed, since any of them can be called.
        assert "gpt-4o-mini" in [m.id for m in client.models.list()]
        assert client.models.retrieve("gpt-4o").id == "gpt-4o"
        anonymous = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            anonymous.chat.completions.create(model="x", messages=MESSAGES)
        assert "sk-cli-key" not in gateway.log()
        assert UPSTREAM_KEY not in gateway.log()
    finally:
        gateway.stop()


def test_concurrent_streams_and_calls_do_not_mix(gateway: Process) -> None:
    """Many clients at once over pooled upstream connections: every answer is its own."""
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(10):
            text = f"client {n} call {i}"
            if i % 2:
                stream = client.chat.completions.create(
                    model="echo", stream=True, messages=[{"role": "user", "content": text}]
                )
                got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                got = (
                    client.chat.completions.create(
                        model="echo", messages=[{"role": "user", "content": text}]
                    )
                    .choices[0]
                    .message.content
                    or ""
                )
            if got != text:
                errors.append(f"{text!r} != {got!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_the_configuration(
    workdir: Path, mock: Process, mock_b: Process, workers: int
) -> None:
    import yaml

    config = gateway_config(mock, mock_b)
    gateway = start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY}, workers=workers)
    path = Path(next(a for a in gateway.args if a.endswith(".yaml")))
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    try:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="added-later", messages=MESSAGES)
        config["models"]["added-later"] = {
            "deployments": [{"provider": "mock", "model": "gpt-4o~echo"}]
        }
        path.write_text(yaml.safe_dump(config))
        gateway.signal(signal.SIGHUP)

        def reloaded() -> bool:
            # A fresh client each time, so that every worker gets asked.
            fresh = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
            try:
                return all(
                    fresh.with_options()
                    .chat.completions.create(model="added-later", messages=MESSAGES)
                    .choices[0]
                    .message.content
                    == "hi"
                    for _ in range(4)
                )
            except openai.NotFoundError:
                return False

        assert wait_for(reloaded, 10)
        # A broken file is refused; the running configuration stays in service.
        path.write_text("providers:\n  mock:\n    base_ur: nope\n")
        gateway.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed" in gateway.log(), 10)
        assert (
            client.chat.completions.create(model="added-later", messages=MESSAGES)
            .choices[0]
            .message.content
            == "hi"
        )
        assert gateway.proc.poll() is None
    finally:
        gateway.stop()
