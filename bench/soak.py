"""Soak: does a Tollway worker's memory stay flat under sustained load?

    python bench/soak.py [--minutes 10] [--out bench-results]

One worker with the default pipeline, pinned to the first core; the mock provider and wrk on
the others. The load cycles through small chats, large prompts, streams and embeddings in
30-second segments, so every path runs throughout. Before the load, the worker counts a
request's tokens (`count_tokens` for gpt-4o), so that its o200k_base table is in memory from
the start, as in any worker that has counted a call whose usage the provider did not report
(`--no-count` leaves it out). Resident memory (VmRSS) is sampled every 10 seconds. All on
127.0.0.1; it stops by itself after --minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from load import run_wrk
from run import MOCK_WORDS, SCENARIOS
from targets import start_mock, start_tollway


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def count_tokens(url: str, headers: dict[str, str]) -> int:
    """Has the worker count a request's tokens with gpt-4o's encoding (loading its table)."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "How many tokens?"}]}
    request = urllib.request.Request(
        url + "/v1/messages/count_tokens",
        data=json.dumps(body).encode(),
        headers={**headers, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(json.loads(answer.read())["input_tokens"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--no-count", action="store_true", help="no token table loaded first")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    proxy_cpu = str(cores[0])
    load_cpus = ",".join(str(c) for c in cores[1:]) or None
    mock = start_mock(load_cpus, MOCK_WORDS)
    tollway = start_tollway("tollway-key", mock.url, proxy_cpu, 1, with_key=True)
    if not args.no_count:
        count_tokens(tollway.url, tollway.headers)
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not done.is_set():
            samples.append((round(time.monotonic() - started, 1), round(rss_mb(tollway.pid), 1)))
            done.wait(10)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    requests = errors = 0
    failed: list[dict[str, object]] = []
    order = ["chat-small", "chat-large-prompt", "chat-stream-20", "embeddings"]
    deadline = started + args.minutes * 60
    try:
        i = 0
        while time.monotonic() < deadline - 1:
            scenario = SCENARIOS[order[i % len(order)]]
            seconds = min(30.0, deadline - time.monotonic())
            result = run_wrk(
                tollway.url + scenario.path, scenario.body, tollway.headers, 64, seconds, load_cpus
            )
            requests += result.requests
            errors += result.socket_errors + result.non2xx
            if result.socket_errors or result.non2xx:
                # Which scenario failed, and when: the total alone cannot tell.
                failed.append(
                    {
                        "at_s": round(time.monotonic() - started, 1),
                        "scenario": scenario.name,
                        "seconds": round(seconds, 1),
                        "socket_errors": result.socket_errors,
                        "non2xx": result.non2xx,
                    }
                )
                print(f"segment {i} failed: {failed[-1]}", file=sys.stderr, flush=True)
            i += 1
    finally:
        done.set()
        sampler.join()
        samples.append((round(time.monotonic() - started, 1), round(rss_mb(tollway.pid), 1)))
        tollway.stop()
        mock.stop()
    after_warmup = [mb for t, mb in samples if t >= 60] or [mb for _, mb in samples]
    report = {
        "minutes": args.minutes,
        "token_table_loaded_first": not args.no_count,
        "requests": requests,
        "errors": errors,
        "failed_segments": failed,
        "rss_mb": {
            "first": samples[0][1],
            "after_1_min": after_warmup[0],
            "last": samples[-1][1],
            "max": max(mb for _, mb in samples),
            "growth_after_1_min": round(samples[-1][1] - after_warmup[0], 1),
        },
        "samples": samples,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
