"""REST services, what passes through: path rewrites and header rules, upstream TLS, bodies
streamed both ways in bounded memory (the worker's peak RSS is measured and printed),
server-sent events as they come, WebSockets through a tunnel, and the same front door as
model routes (keys, subscriptions).

One gateway with one worker (so that its memory is the one measured), on a store, configured
through the admin API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from rest_services import RestGateway
from rest_targets import Target
from servers import parse_responses, read_until_closed, worker_pids

MB = 1024 * 1024


@pytest.fixture(scope="module")
def gw(workdir: Path) -> Iterator[RestGateway]:
    gateway = RestGateway(workdir, workers=1, server={"limits": {"body_timeout_s": 1.5}})
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def target(workdir: Path) -> Iterator[Target]:
    started = Target(workdir, "t").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def files(gw: RestGateway, target: Target) -> str:
    """A plain service for the streaming tests: /files."""
    gw.service("files", {"targets": [{"url": target.url}]})
    return "/files"


def _peak_rss(gw: RestGateway) -> int:
    """The worker's peak resident memory so far (VmHWM), in bytes."""
    (pid,) = worker_pids(gw.process)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _upload(gw: RestGateway, path: str, size: int) -> tuple[dict[str, object], float]:
    """PUT `size` bytes with a content-length over a raw socket, as fast as the gateway takes
    them; returns the target's answer and the seconds it took."""
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256()
    head = (
        f"PUT {path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {gw.key}\r\n"
        f"content-type: application/octet-stream\r\ncontent-length: {size}\r\n"
        "connection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gw.process.port), timeout=60) as sock:
        sock.sendall(head)
        left = size
        while left:
            piece = block[: min(left, len(block))]
            sock.sendall(piece)
            digest.update(piece)
            left -= len(piece)
        answer = read_until_closed(sock, 60)
    spent = time.monotonic() - started
    ((status, _, body),) = parse_responses(answer)
    assert status == 200, answer[:500]
    result = json.loads(body)
    assert result["bytes"] == size and result["sha256"] == digest.hexdigest()
    return result, spent


def _measure_upload(gw: RestGateway, path: str, size: int) -> None:
    before = _peak_rss(gw)
    _, spent = _upload(gw, path, size)
    after = _peak_rss(gw)
    print(
        f"upload of {size // MB} MiB through the gateway in {spent:.1f} s "
        f"({size / MB / spent:.0f} MiB/s); worker peak RSS {after / MB:.1f} MiB "
        f"(+{(after - before) / MB:.1f} MiB during it)"
    )
    assert after - before < 48 * MB


def test_a_1_gb_upload_streams_through_in_bounded_memory(gw: RestGateway, files: str) -> None:
    # About 4 s on a 2-core machine (260 MiB/s): short enough to run always.
    _measure_upload(gw, files + "/upload", 1024 * MB)


def test_a_chunked_upload_and_requests_pipelined_after_it(gw: RestGateway, files: str) -> None:
    parts = [bytes([i]) * 100_000 for i in range(8)]
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    request = (
        f"POST {files}/upload HTTP/1.1\r\nhost: g\r\nauthorization: Bearer {gw.key}\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode() + body
    follow = (
        f"GET {files}/after HTTP/1.1\r\nhost: g\r\nauthorization: Bearer {gw.key}\r\n"
        "connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gw.process.port), timeout=10) as sock:
        sock.sendall(request + follow.encode())
        (first, second) = parse_responses(read_until_closed(sock, 10))
    assert first[0] == second[0] == 200
    assert json.loads(first[2])["bytes"] == 800_000
    assert json.loads(second[2])["path"] == "/after"


def test_expect_100_continue_and_limits(gw: RestGateway, target: Target) -> None:
    gw.service("small", {"targets": [{"url": target.url}], "max_request_bytes": MB})
    with socket.create_connection(("127.0.0.1", gw.process.port), timeout=10) as sock:
        sock.sendall(
            (
                f"PUT /small/upload HTTP/1.1\r\nhost: g\r\nauthorization: Bearer {gw.key}\r\n"
                f"content-length: {512 * 1024}\r\nexpect: 100-continue\r\n"
                "connection: close\r\n\r\n"
            ).encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"z" * 512 * 1024)
        ((status, _, body),) = parse_responses(read_until_closed(sock, 10))
        assert status == 200 and json.loads(body)["bytes"] == 512 * 1024
    # Over the service's limit: refused from its content-length, or as it arrives; the
    # client's error, not its target's (which is not ejected for it).
    too_big = gw.client.put("/small/upload", content=b"x" * (2 * MB))
    assert too_big.status_code == 413, too_big.text
    for _ in range(6):
        chunked = gw.client.put("/small/upload", content=iter([b"x" * MB, b"y" * MB]))
        assert chunked.status_code == 413
    assert gw.client.get("/small/x").json()["target"] == "t"


def test_a_stalled_upload_times_out_but_a_slow_upstream_does_not(
    gw: RestGateway, files: str
) -> None:
    # The client stops sending: 408 after the body timeout (1.5 s here).
    with socket.create_connection(("127.0.0.1", gw.process.port), timeout=10) as sock:
        sock.sendall(
            (
                f"PUT {files}/upload HTTP/1.1\r\nhost: g\r\nauthorization: Bearer {gw.key}\r\n"
                f"content-length: {MB}\r\n\r\n"
            ).encode()
            + b"s" * 100_000
        )
        started = time.monotonic()
        ((status, _, body),) = parse_responses(read_until_closed(sock, 10))
        waited = time.monotonic() - started
    assert status == 408 and b"Timed out reading the request body" in body
    assert 1.0 < waited < 5
    # The upstream stops reading for twice that: the gateway stops reading the client and
    # waits, which is no timeout of the client's.
    result, spent = _upload(gw, files + "/upload?stall_ms=3000", 64 * MB)
    assert spent > 3 and result["bytes"] == 64 * MB


def test_an_upload_refused_before_its_body_gets_the_refusal(gw: RestGateway, files: str) -> None:
    answer = httpx.put(
        gw.url + files + "/upload",
        headers={"Authorization": "Bearer tw-not-a-key"},
        content=b"u" * (20 * MB),
        timeout=30,
    )
    assert answer.status_code == 401


def test_a_download_streams_through_in_bounded_memory(gw: RestGateway, files: str) -> None:
    size = 200 * MB
    before = _peak_rss(gw)
    received = 0
    started = time.monotonic()
    with gw.client.stream("GET", f"{files}/download?bytes={size}") as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_raw():
            received += len(chunk)
    spent = time.monotonic() - started
    after = _peak_rss(gw)
    print(
        f"download of {size // MB} MiB in {spent:.1f} s; worker peak RSS {after / MB:.1f} MiB "
        f"(+{(after - before) / MB:.1f} MiB during it)"
    )
    assert received == size
    assert after - before < 48 * MB


def test_server_sent_events_are_relayed_as_they_come(gw: RestGateway, files: str) -> None:
    delays = []
    with gw.client.stream("GET", f"{files}/sse?events=5&delay_ms=300") as answer:
        assert answer.headers["content-type"] == "text/event-stream"
        for line in answer.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                delays.append(time.time() - event["sent_at"])
    assert len(delays) == 5
    print(f"server-sent events reached the client {max(delays) * 1000:.0f} ms after at most")
    assert max(delays) < 0.2


def test_path_rewrites_and_header_rules(gw: RestGateway, workdir: Path) -> None:
    based = Target(workdir, "based").start()
    try:
        gw.service(
            "rw",
            {
                "targets": [{"url": based.url + "/base"}],
                "replace_prefix": "/api/v2",
                "headers": {"X-Static": "s", "X-User": "static wins"},
                "request_headers": {
                    "add": {"x-env": "prod"},
                    "remove": ["x-drop"],
                    "rename": {"x-trace": "x-client-trace"},
                },
                "response_headers": {
                    "add": {"x-served-by": "tollway"},
                    "remove": ["x-internal"],
                    "rename": {"x-target": "x-upstream"},
                },
            },
        )
        answer = gw.client.get(
            "/rw/items/7?q=1",
            headers={
                "x-drop": "1",
                "x-trace": "abc",
                "x-user": "client",
                "x-api-key": gw.key,
                "x-tollway-version": "1",
            },
        )
        assert answer.status_code == 200, answer.text
        seen = answer.json()
        assert seen["path"] == "/base/api/v2/items/7" and seen["query"] == "q=1"
        headers = seen["headers"]
        assert headers["x-static"] == "s" and headers["x-user"] == "static wins"
        assert headers["x-env"] == "prod" and headers["x-client-trace"] == "abc"
        assert headers["x-forwarded-prefix"] == "/rw"
        for gone in ("x-drop", "x-trace", "authorization", "x-api-key", "x-tollway-version"):
            assert gone not in headers, gone
        assert answer.headers["x-served-by"] == "tollway"
        assert answer.headers["x-upstream"] == "based"
        assert "x-internal" not in answer.headers and "x-target" not in answer.headers

        gw.service("kept", {"targets": [{"url": based.url}], "strip_prefix": False})
        assert gw.client.get("/kept/items").json()["path"] == "/kept/items"
        assert gw.client.get("/kept").json()["path"] == "/kept"
    finally:
        based.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for this run (it is its own CA)."""
    folder = tmp_path_factory.mktemp("rest-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_upstream_tls_is_verified(
    gw: RestGateway, workdir: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    secure = Target(
        workdir, "secure", "--tls-cert", str(cert), "--tls-key", str(key), tls=True
    ).start()
    try:
        gw.service(
            "tls-private-ca", {"targets": [{"url": secure.url}], "tls": {"ca_file": str(cert)}}
        )
        assert gw.client.get("/tls-private-ca/x").json()["target"] == "secure"
        untrusted = "tls-untrusted"
        gw.service(untrusted, {"targets": [{"url": secure.url}], "health_checks": {}})
        refused = gw.client.get(f"/{untrusted}/x")
        assert refused.status_code == 502
        error = refused.json()["error"]
        assert error["code"] == "upstream_connect" and "TLS" in error["message"], error
        gw.service("tls-unverified", {"targets": [{"url": secure.url}], "tls": {"verify": False}})
        assert gw.client.get("/tls-unverified/x").json()["target"] == "secure"
    finally:
        secure.stop()


def test_websockets_pass_through(gw: RestGateway, files: str, target: Target) -> None:
    url = gw.url.replace("http://", "ws://") + files + "/ws"

    async def echo() -> None:
        async with websockets.connect(url, additional_headers=gw.headers, max_size=None) as ws:
            for i in range(20):
                await ws.send(f"message {i}")
                assert await ws.recv() == f"t:message {i}"
            blob = bytes(range(256)) * 4096
            await ws.send(blob)
            assert await ws.recv() == blob
        # The gateway's key is needed, as for any call.
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        assert refused.value.response.status_code == 401
        # A browser carries the key in a subprotocol: it opens the gateway, not the target.
        offered = [Subprotocol("chat"), Subprotocol(f"openai-insecure-api-key.{gw.key}")]
        async with websockets.connect(url, subprotocols=offered) as browser:
            assert browser.subprotocol == "chat"
            await browser.send("subprotocols?")
            assert json.loads(await browser.recv()) == ["chat"]
        # Offered alone, the key subprotocol is the one the gateway's answer takes (a browser
        # fails a handshake that takes none of those it offered); the target is offered none.
        async with websockets.connect(url, subprotocols=offered[1:]) as key_only:
            assert key_only.subprotocol == offered[1]
            await key_only.send("subprotocols?")
            assert json.loads(await key_only.recv()) == []

    asyncio.run(echo())
    # Passed through only where the service allows it.
    gw.service("no-ws", {"targets": [{"url": target.url}], "websockets": False})

    async def refused() -> None:
        no_ws = gw.url.replace("http://", "ws://") + "/no-ws/ws"
        with pytest.raises(websockets.InvalidStatus) as plain:
            async with websockets.connect(no_ws, additional_headers=gw.headers):
                pass
        assert plain.value.response.status_code == 200

    asyncio.run(refused())
