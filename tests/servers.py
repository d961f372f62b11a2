"""Starting real Tollway processes (gateway, mock provider) on 127.0.0.1 for tests."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HOST = "127.0.0.1"


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PICKED: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, below the range the kernel hands out as clients' source
    ports: a port from that range (what binding port 0 gives) can be taken, before the
    server binds it, by an outgoing connection of another test process."""
    floor = _ephemeral_floor()
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.randrange(10000, max(floor, 10001))
        if port in _PICKED:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _PICKED.add(port)
        return port
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Process:
    """A tollway subprocess; its output goes to a log file that failures can show."""

    def __init__(
        self,
        args: list[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        max_open_files: int | None = None,
    ) -> None:
        self.args = args
        self.port = port
        self.log_path = log_path
        # The admin port (admin API with a store; /metrics and health without one).
        self.admin_port: int | None = None
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}

        def limit_files() -> None:
            if max_open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tollway", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            preexec_fn=limit_files,
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/healthz", timeout_s: float = 30.0) -> Process:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        # Stopped, so that a gateway that never came up leaves no workers behind.
        self.stop()
        raise RuntimeError(f"{self.args} not ready after {timeout_s} s:\n{self.log()}")

    def wait_listening(self, timeout_s: float = 30.0) -> Process:
        """For servers not reachable over plain HTTP (TLS): wait for the port to accept."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.args} not listening after {timeout_s} s:\n{self.log()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 15.0) -> int:
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def start_mock(tmp: Path, *extra: str, api_key: str | None = None) -> Process:
    port = free_port()
    args = ["mock-provider", "--port", str(port), *extra]
    if api_key:
        args += ["--api-key", api_key]
    return Process(args, port, tmp / f"mock-{port}.log").wait_ready()


def start_gateway(
    tmp: Path,
    config: dict[str, Any] | None = None,
    *extra: str,
    env: dict[str, str] | None = None,
    workers: int = 1,
    wait: bool = True,
    max_open_files: int | None = None,
) -> Process:
    port = free_port()
    args = ["serve", "--port", str(port), "--workers", str(workers), *extra]
    admin_port = None
    if "--admin-port" not in extra:
        # A port of its own for /metrics: the default (8081) would go to whichever test
        # gateway starts first.
        admin_port = free_port()
        args += ["--admin-port", str(admin_port)]
    if config is not None:
        path = tmp / f"gateway-{port}.yaml"
        path.write_text(yaml.safe_dump(config))
        args += ["--config", str(path)]
    process = Process(args, port, tmp / f"gateway-{port}.log", env, max_open_files)
    process.admin_port = admin_port
    return process.wait_ready() if wait else process


def wait_started(process: Process, timeout_s: float = 30.0) -> Process:
    """For a gateway with a supervisor: waits for its companions too (the recorder, the
    admin API); the data port answers as soon as the workers do."""
    deadline = time.monotonic() + timeout_s
    while "workers ready" not in process.log():
        if process.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.args} did not start:\n{process.log()}")
        time.sleep(0.05)
    return process


def worker_pids(process: Process) -> list[int]:
    """The gateway's worker processes (its children but its companions, the recorder and
    the admin API), from /proc."""
    return [pid for pid in child_pids(process) if not _is_companion(pid)]


def child_pids(process: Process) -> list[int]:
    """Every child of the gateway's supervisor, workers and companions."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state, ppid, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == process.proc.pid and fields[0] != "Z":
            children.append(int(entry.name))
    return sorted(children)


def recorder_pid(process: Process) -> int | None:
    found = [pid for pid in child_pids(process) if _comm(pid) == "tollway-record"]
    return found[0] if found else None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _is_companion(pid: int) -> bool:
    return _comm(pid) in ("tollway-record", "tollway-admin")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def requests_seen(mock: Process) -> int:
    """How many requests the mock provider has been sent (its recent list is capped)."""
    return int(get_json(mock.url + "/_mock/stats")["requests"])


def post(url: str, data: bytes = b"") -> Any:
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def raw_exchange(port: int, data: bytes, timeout_s: float = 3.0) -> bytes:
    """Send raw bytes and read until the server closes or goes quiet for `timeout_s`."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout_s)


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream into HTTP/1.1 responses (content-length or chunked bodies)."""
    out = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            continue
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                body += rest[:size]
                rest = rest[size + 2 :]
                if size == 0:
                    break
        else:
            length = int(headers.get("content-length", "0"))
            body, rest = rest[:length], rest[length:]
        out.append((status, headers, body))
    return out
