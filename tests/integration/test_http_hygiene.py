"""The data plane's HTTP/1.1 layer, byte by byte over raw sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollway.testing import mock_openai as wire

from gateways import UPSTREAM_KEY, gateway_config
from servers import HOST, Process, parse_responses, raw_exchange, read_until_closed, start_gateway


@pytest.fixture(scope="module")
def strict(workdir: Path, mock: Process, mock_b: Process) -> Iterator[Process]:
    """A gateway without client keys and with small limits, so limits are cheap to reach."""
    config = gateway_config(
        mock,
        mock_b,
        limits={"header_timeout_s": 1, "keepalive_timeout_s": 2, "max_body_bytes": 1024 * 1024},
    )
    del config["keys"]
    process = start_gateway(workdir, config, env={"MOCK_KEY": UPSTREAM_KEY})
    yield process
    process.stop()


def chat_body(text: str = "hello", model: str = "echo") -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()


def post(body: bytes, *extra: str, path: str = "/v1/chat/completions") -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def content(body: bytes) -> str:
    return json.loads(body)["choices"][0]["message"]["content"]


def test_keep_alive_serves_many_requests_on_one_connection(strict: Process) -> None:
    with socket.create_connection((HOST, strict.port)) as sock:
        for i in range(3):
            sock.sendall(post(chat_body(f"turn {i}")))
            data = b""
            while not parse_responses(data):
                data += sock.recv(65536)
            [(status, headers, body)] = parse_responses(data)
            assert status == 200
            assert "connection" not in headers
            assert content(body) == f"turn {i}"


def test_pipelined_requests_are_answered_in_order(strict: Process) -> None:
    requests = (
        post(chat_body("first"))
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        + post(chat_body("third"), "Connection: close")
    )
    responses = parse_responses(raw_exchange(strict.port, requests))
    assert [r[0] for r in responses] == [200, 200, 200]
    assert content(responses[0][2]) == "first"
    assert json.loads(responses[1][2]) == {"status": "ok"}
    assert content(responses[2][2]) == "third"
    assert responses[2][1]["connection"] == "close"


def test_chunked_request_body(strict: Process) -> None:
    body = chat_body("sent in chunks")
    parts = [body[:10], body[10:25], body[25:]]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + chunked
    [(status, _, response)] = parse_responses(raw_exchange(strict.port, request))
    assert status == 200
    assert content(response) == "sent in chunks"


def test_chunked_response_stream_is_well_framed(strict: Process) -> None:
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    [(status, headers, stream)] = parse_responses(
        raw_exchange(strict.port, post(body, "Connection: close"))
    )
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert headers["content-type"].startswith("text/event-stream")
    events = [e for e in stream.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == " ".join(wire.reply_words("hi", 50))


def test_expect_100_continue(strict: Process) -> None:
    body = chat_body("after continue")
    head = post(b"", "Expect: 100-continue", "Connection: close").replace(
        b"Content-Length: 0", b"Content-Length: %d" % len(body)
    )
    with socket.create_connection((HOST, strict.port), timeout=3) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        [(status, _, response)] = parse_responses(read_until_closed(sock, 3))
    assert status == 200
    assert content(response) == "after continue"


def test_expect_100_continue_refused_when_body_too_large(strict: Process) -> None:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\n"
        f"Content-Length: {2 * 1024 * 1024}\r\n\r\n"
    ).encode()
    data = raw_exchange(strict.port, head)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in data


SMUGGLING = {
    "content-length and transfer-encoding": (
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding and content-length": (
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
    ),
    "two different content-lengths": b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "chunked twice": b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    "obs-fold header": b"X-Folded: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
    "space before colon": b"Content-Length : 0\r\n\r\n",
    "unknown transfer-coding": b"Transfer-Encoding: gzip\r\n\r\n",
}


@pytest.mark.parametrize("form", list(SMUGGLING))
def test_request_smuggling_forms_are_refused(strict: Process, form: str) -> None:
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + SMUGGLING[form]
    data = raw_exchange(strict.port, request + post(chat_body()))
    responses = parse_responses(data)
    # One 400, then the connection is closed: the request behind it is never served.
    assert [r[0] for r in responses] == [400], data[:300]
    assert responses[0][1]["connection"] == "close"
    assert json.loads(responses[0][2])["error"]["type"] == "invalid_request_error"


def test_transfer_encoding_on_http10_is_refused(strict: Process) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert raw_exchange(strict.port, request).startswith(b"HTTP/1.1 400 ")


def test_http10_request_is_answered_and_closed(strict: Process) -> None:
    body = chat_body("old client")
    request = post(body).replace(b"HTTP/1.1", b"HTTP/1.0")
    [(status, headers, response)] = parse_responses(raw_exchange(strict.port, request))
    assert status == 200
    assert headers["connection"] == "close"
    assert content(response) == "old client"


def test_body_over_the_limit_by_content_length_is_413(gateway: Process) -> None:
    # The default limit, 32 MiB: refused from the header alone, before any body is sent.
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Length: {32 * 1024 * 1024 + 1}\r\n\r\n"
    ).encode()
    data = raw_exchange(gateway.port, head)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"33554432" in data


def test_chunked_body_over_the_limit_is_413(strict: Process) -> None:
    chunk = b"x" * 65536
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, strict.port), timeout=3) as sock:
        sock.sendall(request)
        try:
            for _ in range(20):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_until_closed(sock, 3)
    assert data.startswith(b"HTTP/1.1 413 ")


def test_header_block_too_large_is_431(strict: Process) -> None:
    request = (f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'a' * 70000}\r\n\r\n").encode()
    assert raw_exchange(strict.port, request).startswith(b"HTTP/1.1 431 ")


def test_too_many_headers_is_431(strict: Process) -> None:
    headers = "".join(f"X-H{i}: v\r\n" for i in range(101))
    request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n".encode()
    data = raw_exchange(strict.port, request)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert b"limit 100" in data


def test_a_header_that_never_ends_is_cut_off(strict: Process) -> None:
    with socket.create_connection((HOST, strict.port), timeout=3) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
        try:
            for _ in range(40):
                sock.sendall(b"a" * 8192)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_until_closed(sock, 3)
    assert data.startswith(b"HTTP/1.1 431 ")


def test_slow_headers_time_out_with_408(strict: Process) -> None:
    with socket.create_connection((HOST, strict.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        data = read_until_closed(sock, 10)
        waited = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 ")
    # Configured at 1 s; the sweep adds at most half a second. Generous bound: not a timing test.
    assert waited < 5


def test_idle_keep_alive_connection_is_closed(strict: Process) -> None:
    with socket.create_connection((HOST, strict.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not parse_responses(data):
            data += sock.recv(65536)
        assert parse_responses(data)[0][0] == 200
        # keepalive_timeout_s is 2: the server closes (recv returns b"") instead of the
        # 10 s socket timeout raising.
        assert sock.recv(1) == b""


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "missing_model"),
        (b'{"model": "echo", "messages": []}', "messages", "invalid_value"),
        (b'{"model": "echo", "messages": ["hi"]}', "messages[0]", "invalid_value"),
        (
            b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
            "invalid_type",
        ),
    ],
)
def test_invalid_bodies_are_400(strict: Process, body: bytes, param: str | None, code: str) -> None:
    [(status, headers, response)] = parse_responses(
        raw_exchange(strict.port, post(body, "Connection: close"))
    )
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json.loads(response)["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_wrong_method_is_405_and_unknown_path_404(strict: Process) -> None:
    responses = parse_responses(
        raw_exchange(
            strict.port,
            (
                b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /v1/unknown HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            ),
        )
    )
    assert responses[0][0] == 405
    assert responses[0][1]["allow"] == "POST"
    assert responses[1][0] == 404
    assert json.loads(responses[1][2])["error"]["message"] == "Invalid URL (POST /v1/unknown)"


def test_request_id_is_echoed_and_forwarded(strict: Process, mock: Process) -> None:
    from servers import get_json

    [(_, headers, _)] = parse_responses(
        raw_exchange(
            strict.port, post(chat_body(), "X-Request-Id: trace-abc-123", "Connection: close")
        )
    )
    assert headers["x-request-id"] == "trace-abc-123"
    assert get_json(mock.url + "/_mock/requests")[-1]["headers"]["x-request-id"] == "trace-abc-123"

    [(_, headers, _)] = parse_responses(
        raw_exchange(strict.port, post(chat_body(), "Connection: close"))
    )
    generated = headers["x-request-id"]
    assert len(generated) >= 16
    assert get_json(mock.url + "/_mock/requests")[-1]["headers"]["x-request-id"] == generated


def test_head_request_has_no_body(strict: Process) -> None:
    data = raw_exchange(
        strict.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 15" in head
    assert rest == b""


def test_http09_request_is_refused_with_505(strict: Process) -> None:
    data = raw_exchange(strict.port, b"GET /healthz\r\n\r\n")
    [(status, headers, body)] = parse_responses(data)
    assert status == 505
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "http_version_not_supported"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine-413\r\n"
            b"Content-Length: 99999999\r\n\r\n",
            413,
            "request_too_large",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nX-Request-Id: mine-431\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(101))
            + b"\r\n",
            431,
            "request_headers_too_large",
        ),
        (b"GET /healthz HTTP/1.1\r\nX-Request-Id: mine-400\r\nHost : x\r\n\r\n", 400, None),
    ],
    ids=["413", "431", "400"],
)
def test_refusals_carry_a_code_and_a_request_id(
    strict: Process, request_bytes: bytes, status: int, code: str | None
) -> None:
    [(got, headers, body)] = parse_responses(raw_exchange(strict.port, request_bytes))
    assert got == status
    error = json.loads(body)["error"]
    assert error["code"] == (code or "invalid_http_request")
    # The client's own id when the parser had read it, else one of the gateway's.
    if status == 400:
        assert headers["x-request-id"]
    else:
        assert headers["x-request-id"] == f"mine-{status}"
