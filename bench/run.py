"""Tollway's benchmark: direct, nginx and Tollway side by side, in one run.

    python bench/run.py [--duration 5] [--scenarios chat-small,...] [--modes one-core,all-cores]

The upstream is nginx answering fixed bodies (bench/fixed_upstream.py), which serves far more
than any proxy measured through it, so the proxy is the bottleneck; without nginx the Python
mock stands in, and the ratios are then the mock's (the report says so). Targets: `direct`
(the upstream itself), `nginx` as a reverse proxy, `tollway-bare` (no policy), `tollway-key`
(key auth) and `tollway-full` (every metering policy on, bench/full-pipeline.yaml).

Everything runs on 127.0.0.1 and stops by itself. In the one-core mode the proxy under test is
pinned to core 0 and the upstream and wrk to the other cores; CPU time per request is read from
/proc for the proxy's process tree, and the proxy core's busy share is read from /proc/stat
during each measurement: a ratio to nginx means something only when that core is saturated,
and the report marks the rows where it was not. Results: a markdown table on stdout, and JSON
plus markdown under --out.
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

from fixed_upstream import start_fixed_upstream
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
    # The fixed upstream's flavour it needs: whole answers (json) or a stream (sse).
    flavour: str = "json"


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
            "sse",
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
    # The share of the time the proxy's core was busy (one-core mode), 0..1.
    proxy_core_busy: float | None = None


def measure(
    target: Target,
    scenario: Scenario,
    connections: int,
    duration_s: float,
    load_cpus: str | None,
    mode: str,
    delay_ms: float = 0.0,
    proxy_cpus: str | None = None,
) -> Row:
    url = target.url + scenario.path
    # Warm up pools and caches, then measure.
    run_wrk(url, scenario.body, target.headers, connections, 1, load_cpus)
    before = cpu_seconds(target.pid)
    roles = cpu_seconds_by_role(target.pid)
    core = int(proxy_cpus) if proxy_cpus is not None and proxy_cpus.isdigit() else None
    core_before = core_times(core) if core is not None else None
    result: WrkResult = run_wrk(
        url, scenario.body, target.headers, connections, duration_s, load_cpus, delay_ms
    )
    used = cpu_seconds(target.pid) - before
    busy = None
    if core is not None and core_before is not None:
        core_after = core_times(core)
        total = core_after[0] - core_before[0]
        busy = round(1.0 - (core_after[1] - core_before[1]) / total, 3) if total else None
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
        busy,
    )


def core_times(core: int) -> tuple[int, int]:
    """(all, idle + iowait) jiffies of one core, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            fields = [int(v) for v in line.split()[1:]]
            return sum(fields[:8]), fields[3] + fields[4]
    raise ValueError(f"no cpu{core} in /proc/stat")


def start_upstream(cpus: str | None, flavour: str) -> Target:
    """The fixed-body nginx (the `direct` target), else the Python mock in its place."""
    upstream = start_fixed_upstream(cpus, flavour)
    if upstream is not None:
        return upstream
    print(
        "bench: nginx is not installed: the Python mock is the upstream, and every ratio is "
        "the mock's (install nginx-light)",
        file=sys.stderr,
    )
    mock = start_mock(cpus, MOCK_WORDS)
    mock.name = "direct"
    return mock


def start_targets(upstream: Target, cpus: str | None, workers: int) -> list[Target]:
    targets = [upstream]
    nginx = start_nginx(upstream.url, cpus, workers)
    if nginx is not None:
        targets.append(nginx)
    targets.append(start_tollway("tollway-bare", upstream.url, cpus, workers, with_key=False))
    targets.append(start_tollway("tollway-key", upstream.url, cpus, workers, with_key=True))
    targets.append(start_tollway_full("tollway-full", upstream.url, cpus, workers))
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
        scenarios = [SCENARIOS[name] for name in mode.scenarios]
        flavours = list(dict.fromkeys(s.flavour for s in scenarios))
        ttfb = mode.name in ("one-core", "shared-core") and args.ttfb_requests > 0
        if ttfb and "sse" not in flavours:
            flavours.append("sse")
        for flavour in flavours:
            # Targets start afresh for each flavour: their upstream answers differently.
            upstream = start_upstream(mode.load_cpus, flavour)
            targets = start_targets(upstream, mode.proxy_cpus, mode.workers)
            try:
                for scenario in (s for s in scenarios if s.flavour == flavour):
                    for connections in mode.connections or scenario.connections:
                        for target in targets:
                            row = measure(
                                target,
                                scenario,
                                connections,
                                args.duration,
                                mode.load_cpus,
                                mode.name,
                                proxy_cpus=mode.proxy_cpus,
                            )
                            rows.append(row)
                            busy = "" if row.proxy_core_busy is None else row.proxy_core_busy
                            print(
                                f"  {mode.name:11} {scenario.name:18} c={connections:<3} "
                                f"{target.name:16} {row.rps:>8} req/s  p50 {row.p50_us} us  "
                                f"cpu {row.cpu_us_per_request} us/req  core busy {busy}",
                                file=sys.stderr,
                            )
                if mode.name == "one-core" and flavour == "json":
                    extra.update(_half_load(targets, rows, args, mode))
                    extra["peak_rss_mb"] = {
                        t.name: round(peak_rss_mb(t.pid, workers_only=True), 1) for t in targets
                    }
                if ttfb and flavour == "sse":
                    extra.setdefault("stream_ttfb", {})[mode.name] = _ttfb(targets, args)
            finally:
                for target in reversed(targets):
                    target.stop()
    return {"rows": [asdict(r) for r in rows], **extra}


def _half_load(
    targets: list[Target], rows: list[Row], args: argparse.Namespace, mode: Mode
) -> dict[str, Any]:
    """Latency at half of Tollway's (key auth) own maximum throughput, with direct
    and nginx paced to the same rate as references for what the machine itself adds."""
    maxima = {
        r.target: r.rps
        for r in rows
        if r.scenario == "chat-small" and r.connections == 64 and r.mode == mode.name
    }
    if not maxima.get("tollway-key") or "chat-small" not in mode.scenarios:
        return {}
    half = maxima["tollway-key"] / 2
    out = {}
    for target in targets:
        if target.name in ("direct", "nginx", "tollway-key"):
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
        if t.name in ("direct", "nginx", "tollway-key")
    }


SATURATED = 0.9


def _saturated(row: Row) -> bool:
    """Whether the proxy's core was busy enough for its throughput to be the proxy's own
    (unknown outside the one-core mode: taken as not shown)."""
    return row.proxy_core_busy is not None and row.proxy_core_busy >= SATURATED


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
            "CPU us/req | workers' CPU us/req | proxy core busy | vs direct | vs nginx | errors |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: |",
        ]
        groups: dict[tuple[str, int, bool], list[Row]] = {}
        for r in rows:
            if r.mode == mode:
                groups.setdefault((r.scenario, r.connections, r.paced), []).append(r)
        for (scenario, conns, paced), group in groups.items():
            base = {r.target: r.rps for r in group}
            for r in group:
                direct = f"{r.rps / base['direct']:.2f}" if base.get("direct") else ""
                vs_nginx = f"{r.rps / base['nginx']:.2f}" if base.get("nginx") else ""
                if vs_nginx and not paced and not _saturated(r):
                    vs_nginx += " (not saturated)"
                busy = "" if r.proxy_core_busy is None else f"{r.proxy_core_busy:.0%}"
                label = scenario + (" (paced to 50%)" if paced else "")
                lines.append(
                    f"| {label} | {conns} | {r.target} | {r.rps:,.0f} | {r.p50_us} | "
                    f"{r.p99_us} | {r.p999_us} | {r.cpu_us_per_request} | "
                    f"{'' if r.worker_cpu_us_per_request is None else r.worker_cpu_us_per_request}"
                    f" | {busy} | {direct} | "
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
        if "direct" in at and "tollway-key" in at:
            added = [f"Tollway +{at['tollway-key'].p50_us - at['direct'].p50_us} us"]
            if "nginx" in at:
                added.append(f"nginx +{at['nginx'].p50_us - at['direct'].p50_us} us")
            out.append(
                f"- added latency at c=1, {mode}, p50 over direct "
                f"({at['direct'].p50_us} us): {', '.join(added)}"
            )
    nginx = one.get(("chat-small", 64, "nginx"))
    if nginx is not None:
        ratios = []
        for name in ("tollway-bare", "tollway-key", "tollway-full"):
            row = one.get(("chat-small", 64, name))
            if row is None:
                continue
            busy = "?" if row.proxy_core_busy is None else f"{row.proxy_core_busy:.0%}"
            shown = "" if _saturated(row) else "; NOT saturated: the ratio is not the proxy's"
            ratios.append(
                f"{name} {row.rps:,.0f} req/s = {row.rps / nginx.rps:.2f} x nginx "
                f"(core {busy} busy{shown})"
            )
        out.append(
            f"- throughput, one core, c=64: nginx {nginx.rps:,.0f} req/s; " + "; ".join(ratios)
        )
        ours = one.get(("chat-small", 64, "tollway-key"))
        if ours is not None and ours.cpu_us_per_request and nginx.cpu_us_per_request:
            out.append(
                f"- CPU per request on the proxy's core: Tollway (key auth) "
                f"{ours.cpu_us_per_request} us, nginx {nginx.cpu_us_per_request} us "
                f"(one core's capacity at that cost: Tollway "
                f"~{1e6 / ours.cpu_us_per_request:,.0f} req/s, nginx "
                f"~{1e6 / nginx.cpu_us_per_request:,.0f} req/s)"
            )
    costs = []
    for name in ("nginx", "tollway-bare", "tollway-key", "tollway-full"):
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
    if "tollway-key" in half:
        parts = [
            f"{name} p99 {v['p99_us']} us (p99.9 {v['p999_us']} us) at {v['achieved_rps']:,} req/s"
            for name, v in half.items()
        ]
        out.append(f"- latency paced to half of Tollway's maximum: {'; '.join(parts)}")
    for mode, ttfb in result.get("stream_ttfb", {}).items():
        if "direct" in ttfb and "tollway-key" in ttfb:
            base = ttfb["direct"]["p50_us"]
            parts = [f"Tollway +{ttfb['tollway-key']['p50_us'] - base:.0f} us"]
            if "nginx" in ttfb:
                parts.append(f"nginx +{ttfb['nginx']['p50_us'] - base:.0f} us")
            out.append(
                f"- stream time to first byte, {mode}, p50 over direct ({base:.0f} us): "
                f"{', '.join(parts)}"
            )
    rss = result.get("peak_rss_mb", {})
    if "tollway-key" in rss:
        out.append(f"- peak RSS per Tollway worker: {rss['tollway-key']} MB")
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
