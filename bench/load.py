"""Load generation: wrk for throughput and latency, a socket probe for time to first byte."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# wrk runs this script: it sends the body from BENCH_BODY_FILE with the given headers, and at
# the end prints one line of JSON. BENCH_DELAY_MS paces each connection (for latency at a
# chosen fraction of the maximum throughput).
WRK_SCRIPT = r"""
local f = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pace > 0 then
  -- Exponential gaps (Poisson arrivals): fixed gaps would make every connection fire at
  -- once and measure bursts instead of a steady load.
  delay = function() return -math.log(1 - math.random()) * pace end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_us: int
    bytes: int
    socket_errors: int
    non2xx: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    mean_us: float
    max_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    cpus: str | None,
    delay_ms: float = 0.0,
) -> WrkResult:
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk')")
    with tempfile.TemporaryDirectory(prefix="tollway-bench-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(WRK_SCRIPT)
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        env = {
            **os.environ,
            "BENCH_BODY_FILE": str(body_file),
            "BENCH_AUTH": headers.get("Authorization", ""),
            "BENCH_DELAY_MS": f"{delay_ms:g}",
        }
        argv = [
            binary,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        if cpus:
            argv = ["taskset", "-c", cpus, *argv]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration_s + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return WrkResult(**json.loads(line[len("BENCH_JSON ") :]))
    raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def _complete(data: bytes) -> bool:
    """Whether `data` holds a whole response: chunked (a stream relayed as it comes) or with
    a content-length (the fixed upstream answering directly)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return data.endswith(b"0\r\n\r\n")
    length = int(head[at + 17 :].split(b"\r\n", 1)[0])
    return len(data) >= end + 4 + length


def time_to_first_byte(
    url: str, body: bytes, headers: dict[str, str], count: int
) -> dict[str, float]:
    """Sequential streamed requests on one keep-alive connection: microseconds from sending
    the request to receiving the first bytes of the first event."""
    parts = urlsplit(url)
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    samples = []
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count + 20):
            started = time.perf_counter_ns()
            sock.sendall(request)
            data = b""
            first = None
            while not _complete(data):
                chunk = sock.recv(262144)
                if not chunk:
                    raise RuntimeError("connection closed during the stream")
                data += chunk
                if first is None and b"data: " in data:
                    first = time.perf_counter_ns()
            if i >= 20 and first is not None:  # the first 20 warm up
                samples.append((first - started) / 1000)
    samples.sort()
    return {
        "p50_us": statistics.median(samples),
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "count": len(samples),
    }
