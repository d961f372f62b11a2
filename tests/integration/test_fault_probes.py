"""Fault and load probes of the data plane, each bounded and on 127.0.0.1 only: clients that
stop reading, upgrade requests under a low file-descriptor limit, reloads and crashed workers,
shutdown mid-stream, hung upstreams, malformed input, and reloads under load."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateways import CLIENT_KEY, UPSTREAM_KEY, gateway_config
from servers import (
    HOST,
    Process,
    get_json,
    open_files,
    parse_responses,
    start_gateway,
    worker_pids,
)

MESSAGES = [{"role": "user", "content": "hi"}]
ENV = {"MOCK_KEY": UPSTREAM_KEY}


def wait_for(predicate: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def request_bytes(path: str, body: dict[str, object] | None, *headers: str) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    method = "POST" if body is not None else "GET"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", *headers]
    if body is not None:
        lines += [f"Authorization: Bearer {CLIENT_KEY}", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def read_to_end(sock: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection (rather than going
    quiet for `timeout_s`)."""
    sock.settimeout(timeout_s)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            return b"".join(chunks), False
        except ConnectionResetError:
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def config_with(mock: Process, mock_b: Process, **server: object) -> dict[str, object]:
    config = gateway_config(mock, mock_b, **server)
    models = config["models"]
    assert isinstance(models, dict)
    # About 38 MB in one non-streamed answer.
    models["huge"] = {"deployments": [{"provider": "mock", "model": "gpt-4o~words=6000000"}]}
    return config


# -- clients that stop reading -----------------------------------------------------------------


def test_a_client_that_stops_reading_a_large_reply_is_dropped(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    config = config_with(mock, mock_b, limits={"send_timeout_s": 1})
    config["providers"]["mock"]["timeouts"] = {"first_byte_s": 30, "idle_s": 30}  # type: ignore[index]
    gateway = start_gateway(workdir, config, env=ENV)
    try:
        with socket.create_connection((HOST, gateway.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(
                request_bytes("/v1/chat/completions", {"model": "huge", "messages": MESSAGES})
            )
            # Not reading: the gateway must give up on this client after its send deadline
            # instead of holding the whole answer for it.
            assert wait_for(lambda: "dropping a client" in gateway.log(), 20)
            data, closed = read_to_end(sock, 5)
        assert closed
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ).split(b":")[1]
        )
        assert length > 30_000_000
        assert len(body) < length
        # The gateway still serves.
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        assert client.chat.completions.create(model="echo", messages=MESSAGES).choices
    finally:
        gateway.stop()


# -- upgrade requests ---------------------------------------------------------------------------


UPGRADE = ("Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13")


def test_upgrade_requests_are_answered_and_closed_under_a_low_fd_limit(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b), env=ENV, max_open_files=512)
    try:
        for i in range(600):
            with socket.create_connection((HOST, gateway.port)) as sock:
                if i % 2:
                    # A synchronous refusal (no key) as well as a synchronous answer.
                    sock.sendall(
                        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                        + "\r\n".join(UPGRADE).encode()
                        + b"\r\nContent-Length: 2\r\n\r\n{}"
                    )
                else:
                    sock.sendall(request_bytes("/healthz", None, *UPGRADE))
                data, closed = read_to_end(sock, 3)
            assert closed, f"request {i}: the gateway kept the connection open"
            [(status, headers, _)] = parse_responses(data)
            assert status == (401 if i % 2 else 200)
            assert headers["connection"] == "close"
        # A second request after an upgrade request is not read: the connection closes.
        with socket.create_connection((HOST, gateway.port)) as sock:
            sock.sendall(
                request_bytes("/healthz", None, *UPGRADE) + request_bytes("/healthz", None)
            )
            data, closed = read_to_end(sock, 3)
        assert closed and len(parse_responses(data)) == 1
        # Nothing leaked: normal calls still work under the same limit.
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        assert client.chat.completions.create(model="echo", messages=MESSAGES).choices
        assert open_files(gateway.proc.pid) < 100
    finally:
        gateway.stop()


# -- reloads and crashed workers ----------------------------------------------------------------


def _served_models(gateway: Process, count: int) -> set[str]:
    """The upstream model that answered `alias`, over fresh connections (so both workers)."""
    seen = set()
    for _ in range(count):
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0) as c:
            seen.add(c.chat.completions.create(model="alias", messages=MESSAGES).model)
    return seen


def test_a_replacement_worker_serves_the_reloaded_configuration(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    config = gateway_config(mock, mock_b)
    config["models"]["alias"] = {"deployments": [{"provider": "mock", "model": "model-a"}]}  # type: ignore[index]
    gateway = start_gateway(workdir, config, env=ENV, workers=2)
    path = Path(next(a for a in gateway.args if a.endswith(".yaml")))
    try:
        assert _served_models(gateway, 10) == {"model-a"}
        config["models"]["alias"] = {"deployments": [{"provider": "mock", "model": "model-b"}]}  # type: ignore[index]
        path.write_text(yaml.safe_dump(config))
        gateway.signal(signal.SIGHUP)
        assert wait_for(lambda: _served_models(gateway, 10) == {"model-b"})
        before = worker_pids(gateway)
        assert len(before) == 2
        killed = before[0]
        os.kill(killed, signal.SIGKILL)
        assert wait_for(
            lambda: len(worker_pids(gateway)) == 2 and killed not in worker_pids(gateway)
        )
        gateway.wait_ready()
        assert _served_models(gateway, 40) == {"model-b"}
    finally:
        gateway.stop()


def test_fifty_reloads_under_load_lose_no_request(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    config = gateway_config(mock, mock_b)
    gateway = start_gateway(workdir, config, env=ENV, workers=2)
    path = Path(next(a for a in gateway.args if a.endswith(".yaml")))
    stop = threading.Event()
    errors: list[str] = []
    served = [0]

    def load() -> None:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0) as c:
            while not stop.is_set():
                try:
                    reply = c.chat.completions.create(model="echo", messages=MESSAGES)
                    assert reply.choices[0].message.content == "hi"
                    served[0] += 1
                except Exception as exc:  # every failure counts
                    errors.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for i in range(50):
            # Alternate two valid configurations, so that every reload really swaps.
            config["models"]["extra"] = {  # type: ignore[index]
                "deployments": [{"provider": "mock", "model": f"gpt-4o~words={i + 1}"}]
            }
            # Whole or not at all, as an operator's tooling writes it: a reload that read the
            # file half-written (truncated, not yet filled) would rightly refuse it.
            staged = path.with_suffix(".staged")
            staged.write_text(yaml.safe_dump(config))
            os.replace(staged, path)
            gateway.signal(signal.SIGHUP)
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    try:
        assert errors == []
        assert served[0] > 50
        assert gateway.proc.poll() is None
        assert "reload failed" not in gateway.log()
    finally:
        gateway.stop()


# -- shutdown --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "marker"),
    [
        (
            "/v1/chat/completions",
            {"model": "slow-stream", "stream": True, "messages": MESSAGES},
            b'"code":"gateway_shutdown"',
        ),
        (
            "/v1/messages",
            {"model": "slow-stream", "stream": True, "max_tokens": 100, "messages": MESSAGES},
            b"event: error",
        ),
    ],
    ids=["openai-pass-through", "anthropic-translated"],
)
def test_a_stream_cut_at_the_drain_deadline_ends_with_an_error_event(
    workdir: Path, mock: Process, mock_b: Process, path: str, body: dict[str, object], marker: bytes
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b, drain_timeout_s=1), env=ENV)
    try:
        with socket.create_connection((HOST, gateway.port)) as sock:
            sock.sendall(request_bytes(path, body, "anthropic-version: 2023-06-01"))
            sock.settimeout(5)
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            gateway.signal(signal.SIGTERM)
            rest, closed = read_to_end(sock, 10)
        assert closed
        [(status, _, stream)] = parse_responses(first + rest)  # well-framed to the end
        assert status == 200
        assert marker in stream
        assert b"shutting down" in stream
        assert gateway.wait(15) == 0
    finally:
        gateway.stop()


def test_sigterm_drains_64_calls_in_flight_without_an_error(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b, drain_timeout_s=20), env=ENV)

    async def call(client: httpx.AsyncClient, streamed: bool) -> bool:
        model = "slow-stream" if streamed else "unhurried"
        body = {"model": model, "stream": streamed, "messages": MESSAGES}
        response = await client.post("/v1/chat/completions", json=body)
        if not streamed:
            return response.status_code == 200 and bool(response.json()["choices"])
        return response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")

    async def run() -> list[bool]:
        async with httpx.AsyncClient(
            base_url=gateway.url,
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            timeout=30,
            limits=httpx.Limits(max_connections=64),
        ) as client:
            calls = [asyncio.create_task(call(client, i % 2 == 0)) for i in range(64)]
            await asyncio.to_thread(
                wait_for,
                lambda: (
                    sum(
                        stream["state"] == "active"
                        for stream in get_json(mock.url + "/_mock/stats")["streams"]
                    )
                    >= 32
                ),
                10,
            )
            gateway.signal(signal.SIGTERM)
            return await asyncio.gather(*calls)

    try:
        results = asyncio.run(run())
        assert results == [True] * 64
        assert gateway.wait(30) == 0
    finally:
        gateway.stop()


# -- hung upstreams and malformed input ---------------------------------------------------------


def test_two_hundred_hung_upstream_calls_time_out_while_the_gateway_serves(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b), env=ENV)
    baseline = open_files(gateway.proc.pid)

    async def run() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(
            base_url=gateway.url,
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
            timeout=30,
            limits=httpx.Limits(max_connections=250),
        ) as client:
            hung = [
                asyncio.create_task(
                    client.post(
                        "/v1/chat/completions", json={"model": "slow", "messages": MESSAGES}
                    )
                )
                for _ in range(200)
            ]
            await asyncio.sleep(0.5)
            # While 200 calls wait on their upstream, the gateway answers everything else.
            health = [(await client.get("/healthz")).status_code for _ in range(20)]
            echo = await client.post(
                "/v1/chat/completions", json={"model": "echo", "messages": MESSAGES}
            )
            health.append(echo.status_code)
            assert not any(task.done() for task in hung)
            return [r.status_code for r in await asyncio.gather(*hung)], health

    try:
        statuses, others = asyncio.run(run())
        assert statuses == [504] * 200
        assert others == [200] * 21
        assert wait_for(lambda: open_files(gateway.proc.pid) <= baseline + 4, 10)
    finally:
        gateway.stop()


def _malformed(rng: random.Random) -> bytes:
    valid = request_bytes("/v1/chat/completions", {"model": "echo", "messages": MESSAGES})
    choice = rng.randrange(6)
    if choice == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if choice == 1:  # truncated anywhere
        return valid[: rng.randrange(1, len(valid))]
    if choice == 2:  # a byte flipped in the head
        data = bytearray(valid)
        at = rng.randrange(valid.index(b"\r\n\r\n"))
        data[at] = rng.randrange(256)
        return bytes(data)
    if choice == 3:  # broken chunked framing
        size = rng.choice([b"zz", b"-1", b"ffffffffffffffffff", b"5;" + b"x" * 200, b""])
        return (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size
            + b"\r\nhello\r\n0\r\n\r\n"
        )
    if choice == 4:  # absurd header values
        value = rng.choice([b"\x00", b"9" * 40, b"\r", b"a\nb", b" " * 5000])
        return b"GET /healthz HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n"
    # an invalid JSON body behind a valid head
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + CLIENT_KEY.encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(junk)
        + junk
    )


def test_ten_thousand_malformed_requests_crash_nothing(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b), env=ENV)
    answered = [0]

    def send(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(2500):
            with socket.create_connection((HOST, gateway.port)) as sock:
                try:
                    sock.sendall(_malformed(rng))
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    continue  # refused and closed before all was sent
                data, closed = read_to_end(sock, 5)
                assert closed
                if data.startswith(b"HTTP/1.1 "):
                    answered[0] += 1

    try:
        threads = [threading.Thread(target=send, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert gateway.proc.poll() is None
        assert answered[0] > 5000
        assert "Traceback" not in gateway.log()
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        assert client.chat.completions.create(model="echo", messages=MESSAGES).choices
    finally:
        gateway.stop()


def test_idle_keep_alive_connections_cost_little_memory(
    workdir: Path, mock: Process, mock_b: Process
) -> None:
    gateway = start_gateway(workdir, gateway_config(mock, mock_b), env=ENV)

    def rss_kib() -> int:
        status = Path(f"/proc/{gateway.proc.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]
        )

    sockets: list[socket.socket] = []
    try:
        warm = [socket.create_connection((HOST, gateway.port)) for _ in range(50)]
        for sock in warm:
            sock.sendall(request_bytes("/healthz", None))
            sock.recv(4096)
        before = rss_kib()
        for _ in range(2000):
            sock = socket.create_connection((HOST, gateway.port))
            sock.sendall(request_bytes("/healthz", None))
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        per_connection = (rss_kib() - before) / 2000
        # Measured at about 3.7 KiB; the bound leaves room for allocator noise.
        assert per_connection < 12, f"{per_connection:.1f} KiB per idle connection"
        for sock in warm:
            sock.close()
    finally:
        for sock in sockets:
            sock.close()
        gateway.stop()
