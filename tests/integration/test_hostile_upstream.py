"""An upstream that misbehaves cannot make the gateway buffer without bound."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from servers import HOST, Process, start_gateway


def raw_upstream(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A server on 127.0.0.1 that reads each request and lets `answer` write raw bytes."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    answer(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def _endless_header(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    for _ in range(64):
        conn.sendall(b"a" * 65536)


@pytest.fixture(scope="module")
def endless_header_upstream() -> Iterator[int]:
    """Answers every connection with a header line that never ends (up to 4 MB)."""
    yield from raw_upstream(_endless_header)


@pytest.fixture(scope="module")
def gateway(workdir: Path, endless_header_upstream: int) -> Iterator[Process]:
    process = start_gateway(
        workdir, None, "--upstream", f"http://{HOST}:{endless_header_upstream}/v1"
    )
    yield process
    process.stop()


def test_an_endless_response_head_is_refused(gateway: Process) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert "response head larger than" in info.value.message


@pytest.fixture(scope="module")
def odd_status_upstream() -> Iterator[int]:
    """Answers every request with status 999, which HTTP does not have."""
    yield from raw_upstream(
        lambda conn: conn.sendall(b"HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\n{}")
    )


def test_a_status_outside_http_is_a_502(workdir: Path, odd_status_upstream: int) -> None:
    process = start_gateway(workdir, None, "--upstream", f"http://{HOST}:{odd_status_upstream}/v1")
    try:
        client = openai.OpenAI(base_url=process.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 502
        assert "invalid status code 999" in info.value.message
    finally:
        process.stop()
