"""Upstream targets for the REST service tests: a small ASGI app served by uvicorn in a process
of its own (so that a test can kill it and start it again on the same port), saying which
target answered.

    python tests/rest_targets.py --port 8001 --name a [--sleep-ms N] [--fail-status N]
        [--tls-cert PEM --tls-key PEM]

Endpoints:
- any path not below: `{"target", "method", "path", "query", "headers", "body_bytes"}`,
  after `?sleep_ms=` (or --sleep-ms); with --fail-status, that status instead;
- `/health`: 200, or the status set by `POST /_control/health?status=N`;
- `/_control/stats`: how many requests each path got;
- `/status/N`: answers N;
- `/upload` (POST/PUT): reads the body as it comes (pausing `?stall_ms=` after its first
  part), answers `{"bytes", "sha256"}`;
- `/download?bytes=N[&cut_at=M]`: N bytes in 64 KiB chunks (chunked), or a connection
  dropped after M of them;
- `/sse?events=N&delay_ms=M`: server-sent events, one every M ms;
- `/ws`: a WebSocket that echoes every message, text prefixed by the target's name; it takes
  the first subprotocol offered, and answers the text `subprotocols?` with those it was offered.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from servers import free_port

HOST = "127.0.0.1"
Scope = dict[str, Any]


class TargetApp:
    def __init__(self, name: str, sleep_ms: int = 0, fail_status: int | None = None) -> None:
        self.name = name
        self.sleep_ms = sleep_ms
        self.fail_status = fail_status
        self.health_status = 200
        self.paths: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self._echo(scope, receive, send)
            return
        path = scope["path"]
        self.paths[path] = self.paths.get(path, 0) + 1
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if path == "/upload":
            await self._upload(receive, send, int(query.get("stall_ms", "0")))
            return
        body = await _read(receive)
        if path == "/health":
            await _answer(send, self.health_status, {"target": self.name})
        elif path == "/_control/stats":
            await _answer(send, 200, {"target": self.name, "paths": self.paths})
        elif path == "/_control/health":
            self.health_status = int(query["status"])
            await _answer(send, 200, {"health": self.health_status})
        elif path.startswith("/status/"):
            await _answer(send, int(path.split("/")[2]), {"target": self.name})
        elif path == "/download":
            await self._download(send, int(query["bytes"]), int(query.get("cut_at", "-1")))
        elif path == "/sse":
            await self._sse(send, int(query.get("events", "5")), int(query.get("delay_ms", "100")))
        elif self.fail_status is not None:
            await _answer(send, self.fail_status, {"target": self.name})
        else:
            sleep_ms = int(query.get("sleep_ms", self.sleep_ms))
            if sleep_ms:
                await asyncio.sleep(sleep_ms / 1000)
            await _answer(
                send,
                200,
                {
                    "target": self.name,
                    "method": scope["method"],
                    "path": path,
                    "query": scope["query_string"].decode(),
                    "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                    "body_bytes": len(body),
                },
                [(b"x-target", self.name.encode()), (b"x-internal", b"secret")],
            )

    async def _upload(self, receive: Any, send: Any, stall_ms: int) -> None:
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            if stall_ms and size:
                # Stop reading for a while, once, after the first part.
                await asyncio.sleep(stall_ms / 1000)
                stall_ms = 0
            chunk = message.get("body", b"")
            size += len(chunk)
            digest.update(chunk)
            if not message.get("more_body"):
                break
        await _answer(send, 200, {"target": self.name, "bytes": size, "sha256": digest.hexdigest()})

    async def _download(self, send: Any, size: int, cut_at: int) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        block = bytes(range(256)) * 256
        left = size
        while left > 0:
            if 0 <= cut_at <= size - left:
                raise ConnectionAbortedError("cut mid-answer, as asked")
            piece = block[: min(left, len(block))]
            left -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": left > 0})

    async def _sse(self, send: Any, events: int, delay_ms: int) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for i in range(events):
            stamp = time.time()
            line = f"data: {json.dumps({'n': i, 'sent_at': stamp, 'target': self.name})}\n\n"
            await send({"type": "http.response.body", "body": line.encode(), "more_body": True})
            await asyncio.sleep(delay_ms / 1000)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _echo(self, scope: Scope, receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        offered = scope.get("subprotocols") or []
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "subprotocols?":
                await send({"type": "websocket.send", "text": json.dumps(offered)})
            elif message.get("text") is not None:
                await send({"type": "websocket.send", "text": f"{self.name}:{message['text']}"})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _read(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _answer(
    send: Any, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the test side -------------------------------------------------------------------------


class Target:
    """A target process; `kill()` it (SIGKILL, as a crash) and `start()` it again."""

    def __init__(
        self, workdir: Path, name: str, *options: str, port: int | None = None, tls: bool = False
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.options = options
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> Target:
        log = open(self.workdir / f"target-{self.name}-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--port",
                str(self.port),
                "--name",
                self.name,
                *self.options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"target {self.name} exited with {self.proc.returncode}")
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"target {self.name} not ready after {timeout_s} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def set_health(self, status: int) -> None:
        request = urllib.request.Request(
            f"{self.url}/_control/health?status={status}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def stats(self) -> dict[str, int]:
        """Requests by path since the target started."""
        with urllib.request.urlopen(f"{self.url}/_control/stats", timeout=5) as answer:
            return dict(json.loads(answer.read())["paths"])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--sleep-ms", type=int, default=0)
    parser.add_argument("--fail-status", type=int)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    uvicorn.run(
        TargetApp(args.name, args.sleep_ms, args.fail_status),
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        host=HOST,
        port=args.port,
        log_level="warning",
        ws="websockets-sansio",
        http="httptools",
        lifespan="off",
        timeout_keep_alive=120,
    )


if __name__ == "__main__":
    main()
