"""A/B: an earlier commit's gateway against the working tree's, interleaved, in one run.

    python bench/ab.py REV [--rounds 4] [--duration 3]

On a machine whose speed drifts (shared hosts, VMs), two benchmark runs minutes apart are not
comparable; alternating short rounds of A and B against one mock provider is. Both gateways run
one worker pinned to the first core with the default pipeline (a client key), the mock and wrk
on the other cores, small chat completions at 64 connections. Prints req/s and CPU time per
request for each round. Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from load import run_wrk
from run import MOCK_WORDS, SCENARIOS
from targets import CLIENT_KEY, HOST, Target, _wait_http, cpu_seconds, free_port, start_mock

ROOT = Path(__file__).resolve().parents[1]


def start_gateway(src: Path, upstream: str, cpus: str) -> Target:
    port = free_port()
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            cpus,
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
            "1",
            "--key",
            CLIENT_KEY,
        ],
        env={**os.environ, "PYTHONPATH": str(src)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = Target(
        str(src), f"http://{HOST}:{port}", proc, {"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    _wait_http(target.url + "/healthz", proc)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rev", help="the earlier commit (A); B is the working tree")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("wrk") is None:
        print("ab: needs 2 cores and wrk", file=sys.stderr)
        return 2
    proxy, load = str(cores[0]), ",".join(str(c) for c in cores[1:])
    worktree = Path(tempfile.mkdtemp(prefix="tollway-ab-")) / "a"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(worktree), args.rev],
        check=True,
    )
    mock = start_mock(load, MOCK_WORDS)
    gateways = {}
    try:
        gateways = {
            "A": start_gateway(worktree / "src", mock.url, proxy),
            "B": start_gateway(ROOT / "src", mock.url, proxy),
        }
        scenario = SCENARIOS["chat-small"]
        results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for target in gateways.values():  # warm both up
            run_wrk(target.url + scenario.path, scenario.body, target.headers, 64, 1, load)
        for _ in range(args.rounds):
            for name, target in gateways.items():
                before = cpu_seconds(target.pid)
                result = run_wrk(
                    target.url + scenario.path,
                    scenario.body,
                    target.headers,
                    64,
                    args.duration,
                    load,
                )
                used = cpu_seconds(target.pid) - before
                results[name].append((round(result.rps), round(used * 1e6 / result.requests, 1)))
        summary = {
            name: {
                "rounds": rounds,
                "median_rps": statistics.median(r for r, _ in rounds),
                "median_cpu_us_per_request": statistics.median(c for _, c in rounds),
            }
            for name, rounds in results.items()
        }
        summary["A"]["rev"] = args.rev
        summary["B"]["rev"] = "working tree"
        print(json.dumps(summary, indent=2))
    finally:
        for target in [*gateways.values(), mock]:
            target.stop()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
