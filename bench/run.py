"""Tollway's benchmark: direct, nginx and Tollway side by side, in one run, against the mock.

    python bench/run.py [--duration 5] [--scenarios chat-small,...] [--modes one-core,all-cores]

Everything runs on 127.0.0.1 and stops by itself. In the one-core mode the proxy under test is
pinned to core 0 and the mock provider and wrk to the other cores; CPU time per request is read
from /proc for the proxy's process tree, which gives its cost per request whichever side is the
bottleneck (on a 2-core machine the load core often is). Results: a markdown table on stdout,
and JSON plus markdown under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from load import WrkResult, run_wrk, time_to_first_byte, wrk_binary
from targets import (
    Target,
    cpu_seconds,
    cpu_seconds_by_role,
    nginx_binary,
    peak_rss_mb,
    start_mock,
    start_nginx,
    start_tollway,
    start_tollway_full,
)

MOCK_WORDS = 12  # a ~600-byte chat completion, close to a short real answer


def _chat(content: str, **extra: Any) -> bytes:
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": content},
            ],
            "max_tokens": 100,
            **extra,
        }
    ).encode()


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: bytes
    connections: tuple[int, ...]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "chat-small",
            "/v1/chat/completions",
            _chat("Summarise the benefits of an AI gateway in two sentences."),
            (1, 64),
        ),
        Scenario(
            "chat-large-prompt",
            "/v1/chat/completions",
            _chat("Summarise this document. " + "lorem ipsum dolor sit amet " * 1850),
            (64,),
        ),
        Scenario(
            "chat-stream-20",
            "/v1/chat/completions",
            _chat("Tell me a story.", stream=True, stream_options={"include_usage": True}),
            (64,),
        ),
        Scenario(
            "embeddings",
            "/v1/embeddings",
            json.dumps(
                {
                    "model": "text-embedding-3-small",
                    "encoding_format": "base64",
                    "input": "The quick brown fox jumps over the lazy dog.",
                }
            ).encode(),
            (64,),
        ),
    )
}


@dataclass
class Row:
    mode: str
    scenario: str
    connections: int
    target: str
    rps: float
    p50_us: int
    p99_us: int
    p999_us: int
    cpu_us_per_request: float
    errors: int
    paced: bool = False
    # Tollway: the workers' share of the CPU per request (the rest is the supervisor and the
    # companions: the recorder writing records, the admin API).
    worker_cpu_us_per_request: float | None = None


def measure(
    target: Target,
    scenario: Scenario,
    connections: int,
    duration_s: float,
    load_cpus: str | None,
    mode: str,
    delay_ms: float = 0.0,
) -> Row:
    url = target.url + scenario.path
    # Warm up pools and caches, then measure.
    run_wrk(url, scenario.body, target.headers, connections, 1, load_cpus)
    before = cpu_seconds(target.pid)
    roles = cpu_seconds_by_role(target.pid)
    result: WrkResult = run_wrk(
        url, scenario.body, target.headers, connections, duration_s, load_cpus, delay_ms
    )
    used = cpu_seconds(target.pid) - before
    worker = None
    if target.name.startswith("tollway") and result.requests:
        after = cpu_seconds_by_role(target.pid)
        if "worker" in after:  # a lone worker serves in the gateway's own process: no split
            spent = after["worker"] - roles.get("worker", 0.0)
            worker = round(spent * 1e6 / result.requests, 1)
    return Row(
        mode,
        scenario.name,
        connections,
        target.name,
        round(result.rps),
        result.p50_us,
        result.p99_us,
        result.p999_us,
        round(used * 1e6 / result.requests, 1) if result.requests else 0.0,
        result.socket_errors + result.non2xx,
        delay_ms > 0,
        worker,
    )


def start_targets(mock: Target, cpus: str | None, workers: int) -> list[Target]:
    targets = [mock]
    nginx = start_nginx(mock.url, cpus, workers)
    if nginx is not None:
        targets.append(nginx)
    targets.append(start_tollway("tollway-bare", mock.url, cpus, workers, with_key=False))
    targets.append(start_tollway("tollway-default", mock.url, cpus, workers, with_key=True))
    targets.append(start_tollway_full("tollway-full", mock.url, cpus, workers))
    return targets


@dataclass(frozen=True)
class Mode:
    """Where the processes run, and what is measured there."""

    name: str
    proxy_cpus: str | None
    load_cpus: str | None
    workers: int
    scenarios: tuple[str, ...]
    connections: tuple[int, ...] | None  # None: each scenario's own list


def modes(names: list[str], scenarios: list[str]) -> list[Mode]:
    cores = sorted(os.sched_getaffinity(0))
    first, rest = str(cores[0]), ",".join(str(c) for c in cores[1:]) or None
    known = {
        # Throughput and CPU per request: the proxy alone on one core.
        "one-core": Mode("one-core", first, rest, 1, tuple(scenarios), None),
        # Added latency without cross-core wake-ups: everything on one core, one request at
        # a time, so the difference from direct is the proxy's own work.
        "shared-core": Mode("shared-core", first, first, 1, ("chat-small",), (1,)),
        # All workers, nothing pinned (on a small machine the load shares the cores).
        "all-cores": Mode("all-cores", None, None, len(cores), ("chat-small",), (64,)),
    }
    return [known[name] for name in names]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    for mode in modes(args.modes.split(","), args.scenarios.split(",")):
        mock = start_mock(mode.load_cpus, MOCK_WORDS)
        targets = start_targets(mock, mode.proxy_cpus, mode.workers)
        try:
            for scenario in (SCENARIOS[name] for name in mode.scenarios):
                for connections in mode.connections or scenario.connections:
                    for target in targets:
                        row = measure(
                            target, scenario, connections, args.duration, mode.load_cpus, mode.name
                        )
                        rows.append(row)
                        print(
                            f"  {mode.name:11} {scenario.name:18} c={connections:<3} "
                            f"{target.name:16} {row.rps:>8} req/s  p50 {row.p50_us} us  "
                            f"cpu {row.cpu_us_per_request} us/req",
                            file=sys.stderr,
                        )
            if mode.name == "one-core":
                extra.update(_half_load(targets, rows, args, mode))
                extra["peak_rss_mb"] = {
                    t.name: round(peak_rss_mb(t.pid, workers_only=True), 1) for t in targets
                }
            if mode.name in ("one-core", "shared-core"):
                extra.setdefault("stream_ttfb", {})[mode.name] = _ttfb(targets, args)
        finally:
            for target in reversed(targets):
                target.stop()
    return {"rows": [asdict(r) for r in rows], **extra}


def _half_load(
    targets: list[Target], rows: list[Row], args: argparse.Namespace, mode: Mode
) -> dict[str, Any]:
    """Latency at half of Tollway's (default pipeline) own maximum throughput, with direct
    and nginx paced to the same rate as references for what the machine itself adds."""
    maxima = {
        r.target: r.rps
        for r in rows
        if r.scenario == "chat-small" and r.connections == 64 and r.mode == mode.name
    }
    if not maxima.get("tollway-default") or "chat-small" not in mode.scenarios:
        return {}
    half = maxima["tollway-default"] / 2
    out = {}
    for target in targets:
        if target.name in ("mock", "nginx", "tollway-default"):
            # Each of 64 connections sends, on average, 1/64 of that rate.
            paced = measure(
                target,
                SCENARIOS["chat-small"],
                64,
                args.duration,
                mode.load_cpus,
                mode.name,
                delay_ms=64 * 1000 / half,
            )
            rows.append(paced)
            out[target.name] = {
                "target_rps": round(half),
                "achieved_rps": paced.rps,
                "p50_us": paced.p50_us,
                "p99_us": paced.p99_us,
                "p999_us": paced.p999_us,
            }
    return {"half_load": out}


def _ttfb(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    stream = SCENARIOS["chat-stream-20"]
    return {
        t.name: time_to_first_byte(t.url + stream.path, stream.body, t.headers, args.ttfb_requests)
        for t in targets
        if t.name in ("mock", "nginx", "tollway-default")
    }


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [Row(**r) for r in result["rows"]]
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}",
        "",
    ]
    for mode in dict.fromkeys(r.mode for r in rows):
        lines += [
            f"### {mode}",
            "",
            "| scenario | conns | target | req/s | p50 us | p99 us | p99.9 us | "
            "CPU us/req | workers' CPU us/req | vs direct | vs nginx | errors |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        groups: dict[tuple[str, int, bool], list[Row]] = {}
        for r in rows:
            if r.mode == mode:
                groups.setdefault((r.scenario, r.connections, r.paced), []).append(r)
        for (scenario, conns, paced), group in groups.items():
            base = {r.target: r.rps for r in group}
            for r in group:
                direct = f"{r.rps / base['mock']:.2f}" if base.get("mock") else ""
                vs_nginx = f"{r.rps / base['nginx']:.2f}" if base.get("nginx") else ""
                label = scenario + (" (paced to 50%)" if paced else "")
                lines.append(
                    f"| {label} | {conns} | {r.target} | {r.rps:,.0f} | {r.p50_us} | "
                    f"{r.p99_us} | {r.p999_us} | {r.cpu_us_per_request} | "
                    f"{'' if r.worker_cpu_us_per_request is None else r.worker_cpu_us_per_request}"
                    f" | {direct} | "
                    f"{vs_nginx} | {r.errors} |"
                )
        lines.append("")
    summary = _summary(rows, result)
    if summary:
        lines += ["### Against the targets", "", *summary, ""]
    return "\n".join(lines)


def _summary(rows: list[Row], result: dict[str, Any]) -> list[str]:
    out = []
    one = {
        (r.scenario, r.connections, r.target): r
        for r in rows
        if r.mode == "one-core" and not r.paced
    }
    for mode in ("shared-core", "one-core"):
        at = {
            r.target: r
            for r in rows
            if r.mode == mode and r.scenario == "chat-small" and r.connections == 1
        }
        if "mock" in at and "tollway-default" in at:
            added = [f"Tollway +{at['tollway-default'].p50_us - at['mock'].p50_us} us"]
            if "nginx" in at:
                added.append(f"nginx +{at['nginx'].p50_us - at['mock'].p50_us} us")
            out.append(
                f"- added latency at c=1, {mode}, p50 over direct "
                f"({at['mock'].p50_us} us): {', '.join(added)}"
            )
    nginx, ours = (
        one.get(("chat-small", 64, "nginx")),
        one.get(("chat-small", 64, "tollway-default")),
    )
    if nginx and ours:
        out.append(
            f"- throughput, one core, c=64: Tollway {ours.rps:,.0f} req/s, nginx "
            f"{nginx.rps:,.0f} req/s ({ours.rps / nginx.rps:.0%} of nginx)"
        )
        out.append(
            f"- CPU per request on the proxy's core: Tollway "
            f"{ours.cpu_us_per_request} us, nginx {nginx.cpu_us_per_request} us "
            f"(one core's capacity at that cost: Tollway "
            f"~{1e6 / ours.cpu_us_per_request:,.0f} req/s, nginx "
            f"~{1e6 / nginx.cpu_us_per_request:,.0f} req/s)"
        )
    costs = []
    for name in ("nginx", "tollway-bare", "tollway-default", "tollway-full"):
        row = one.get(("chat-small", 64, name))
        if row is not None:
            workers = row.worker_cpu_us_per_request
            costs.append(
                f"{name} {row.cpu_us_per_request} us"
                + (f" ({workers} us in the workers)" if workers is not None else "")
            )
    if ("chat-small", 64, "tollway-full") in one:
        out.append(
            "- CPU per request, one core, c=64, same run: " + ", ".join(costs) + " (full: key "
            "auth, subscription, rate limits, budget, cost and the call record, all on)"
        )
    half = result.get("half_load", {})
    if "tollway-default" in half:
        parts = [
            f"{name} p99 {v['p99_us']} us (p99.9 {v['p999_us']} us) at {v['achieved_rps']:,} req/s"
            for name, v in half.items()
        ]
        out.append(f"- latency paced to half of Tollway's maximum: {'; '.join(parts)}")
    for mode, ttfb in result.get("stream_ttfb", {}).items():
        if "mock" in ttfb and "tollway-default" in ttfb:
            base = ttfb["mock"]["p50_us"]
            parts = [f"Tollway +{ttfb['tollway-default']['p50_us'] - base:.0f} us"]
            if "nginx" in ttfb:
                parts.append(f"nginx +{ttfb['nginx']['p50_us'] - base:.0f} us")
            out.append(
                f"- stream time to first byte, {mode}, p50 over direct ({base:.0f} us): "
                f"{', '.join(parts)}"
            )
    rss = result.get("peak_rss_mb", {})
    if "tollway-default" in rss:
        out.append(f"- peak RSS per Tollway worker: {rss['tollway-default']} MB")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--modes", default="one-core,shared-core,all-cores")
    parser.add_argument("--ttfb-requests", type=int, default=300)
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args()
    if wrk_binary() is None:
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print(
            "bench: needs at least 2 cores (one for the proxy, one for the load)", file=sys.stderr
        )
        return 2
    if nginx_binary() is None:
        print("bench: nginx not installed; measuring without it", file=sys.stderr)
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    result = run(args)
    result["machine"] = (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}"
    )
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["command"] = command.strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=2))
    table = markdown(result, command.strip())
    (out / "latest.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
