"""The benchmark suite runs from a clean checkout and writes well-formed results.

Timing decides nothing here: only that every target answered every request and that the
report has the shape docs/performance.md relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_suite_runs_and_reports(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--duration",
            "1",
            "--scenarios",
            "chat-small,chat-stream-20",
            "--modes",
            "one-core",
            "--ttfb-requests",
            "20",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    rows = report["rows"]
    targets = {r["target"] for r in rows}
    assert {"direct", "nginx", "tollway-bare", "tollway-key", "tollway-full"} <= targets
    for row in rows:
        assert row["errors"] == 0, row
        assert row["rps"] > 0 and row["p50_us"] > 0 and row["cpu_us_per_request"] > 0, row
    scenarios = {(r["scenario"], r["connections"]) for r in rows}
    assert {("chat-small", 1), ("chat-small", 64), ("chat-stream-20", 64)} <= scenarios
    assert any(r["paced"] for r in rows)
    # Each unpaced one-core measurement says how busy the proxy's core was.
    for row in rows:
        if not row["paced"]:
            assert 0 < row["proxy_core_busy"] <= 1, row
    assert set(report["stream_ttfb"]["one-core"]) == {"direct", "nginx", "tollway-key"}
    assert report["peak_rss_mb"]["tollway-key"] > 0
    assert set(report["half_load"]) == {"direct", "nginx", "tollway-key"}
    table = (tmp_path / "latest.md").read_text()
    assert "| chat-small | 64 | tollway-key |" in table
    assert "### Against the targets" in table
    assert "x nginx (core" in table
