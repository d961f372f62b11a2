"""The processes a benchmark run measures: the mock provider, nginx, and Tollway gateways.

Every process listens on 127.0.0.1 only. CPU time and peak memory are read from /proc for the
process and all its descendants (nginx's workers, Tollway's workers).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
CLIENT_KEY = "sk-bench-client"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in children:
        out.extend(_descendants(int(child)))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process tree, in seconds."""
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def cpu_seconds_by_role(pid: int) -> dict[str, float]:
    """utime + stime of a Tollway tree by process role (its /proc comm: tollway-worker,
    tollway-record, tollway-admin; anything else is counted as "other": the supervisor)."""
    out: dict[str, float] = {}
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            continue
        role = comm.removeprefix("tollway-") if comm.startswith("tollway-") else "other"
        out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def peak_rss_mb(pid: int, workers_only: bool = False) -> float:
    """The largest VmHWM (peak resident set) among a tree's processes, in MB."""
    peaks = []
    tree = _descendants(pid)
    if workers_only and len(tree) > 1:
        tree = tree[1:]
    for p in tree:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(peaks, default=0.0)


@dataclass
class Target:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def _wait_settled(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Wait until the process tree has finished starting: under 5% of a core over half a
    second. Serving starts before the companions have (the admin API imports its framework
    for a few seconds), and on a pinned core their start would be measured as the proxy's."""
    deadline = time.monotonic() + timeout_s
    before = cpu_seconds(proc.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(proc.pid)
        if now - before < 0.025:
            return
        before = now
    raise RuntimeError(f"the process tree of {proc.pid} did not settle within {timeout_s} s")


def _pinned(cpus: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def start_mock(cpus: str | None, words: int) -> Target:
    port = free_port()
    proc = subprocess.Popen(
        _pinned(
            cpus,
            [
                sys.executable,
                "-m",
                "tollway",
                "--log-level",
                "warning",
                "mock-provider",
                "--port",
                str(port),
                "--words",
                str(words),
            ],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = Target("mock", f"http://{HOST}:{port}", proc)
    _wait_http(target.url + "/healthz", proc)
    return target


def start_tollway(
    name: str, upstream: str, cpus: str | None, workers: int, with_key: bool
) -> Target:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "tollway",
        "--log-level",
        "warning",
        "serve",
        "--upstream",
        upstream + "/v1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    headers = {}
    if with_key:
        argv += ["--key", CLIENT_KEY]
        headers["Authorization"] = f"Bearer {CLIENT_KEY}"
    proc = subprocess.Popen(
        _pinned(cpus, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    target = Target(name, f"http://{HOST}:{port}", proc, headers)
    _wait_http(target.url + "/healthz", proc)
    return target


FULL_PIPELINE = Path(__file__).with_name("full-pipeline.yaml")


def start_tollway_full(name: str, upstream: str, cpus: str | None, workers: int) -> Target:
    """Tollway with its store (SQLite) and every metering policy on, from
    bench/full-pipeline.yaml as it ships (applied to a fresh store, then served)."""
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-full-"))
    env = {
        **os.environ,
        "TOLLWAY_BENCH_UPSTREAM": upstream + "/v1",
        "TOLLWAY_BENCH_KEY": CLIENT_KEY,
    }
    data = ["--data-dir", str(workdir / "data")]
    base = [sys.executable, "-m", "tollway", "--log-level", "warning"]
    subprocess.run(
        [*base, "apply", *data, str(FULL_PIPELINE)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    argv = [
        *base,
        "serve",
        "--config",
        str(FULL_PIPELINE),
        *data,
        "--admin-port",
        "0",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(
        _pinned(cpus, argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    target = Target(name, f"http://{HOST}:{port}", proc, headers, workdir)
    _wait_http(target.url + "/healthz", proc)
    _wait_settled(proc)
    return target


NGINX_CONF = """
worker_processes {workers};
{affinity}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    upstream mock {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /healthz {{ return 200 "ok"; }}
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Server-sent events must flow as they arrive, as in any LLM proxy.
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


def start_nginx(upstream: str, cpus: str | None, workers: int) -> Target | None:
    binary = nginx_binary()
    if binary is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-nginx-"))
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=workers,
            dir=workdir,
            port=port,
            upstream_port=upstream.rsplit(":", 1)[1],
            affinity="",
        )
    )
    return run_nginx("nginx", binary, conf, port, cpus)


def run_nginx(name: str, binary: str, conf: Path, port: int, cpus: str | None) -> Target:
    """nginx in the foreground on `conf` (whose folder is the target's to remove), answering
    /healthz on `port`."""
    proc = subprocess.Popen(
        _pinned(cpus, [binary, "-c", str(conf), "-g", "daemon off;"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = Target(name, f"http://{HOST}:{port}", proc, workdir=conf.parent)
    _wait_http(target.url + "/healthz", proc)
    return target
