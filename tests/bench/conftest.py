"""The CPU budget table of the hot-path microbenchmarks (test_hot_path.py): printed after a
run with `--benchmark-enable`, each piece's median against its budget. A report, not a test:
timing decides nothing here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_MEASURED: list[tuple[str, float, float | None]] = []


@pytest.fixture(autouse=True)
def _report_against_budget(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    benchmark = request.node.funcargs.get("benchmark")
    metadata = getattr(benchmark, "stats", None)
    if metadata is None or metadata.stats is None:
        return  # benchmarks disabled: the test ran once, as a test of behaviour
    budgets: dict[str, float] = getattr(request.module, "BUDGET_US", {})
    median_us = metadata.stats.median * 1e6
    _MEASURED.append((request.node.name, median_us, budgets.get(request.node.name)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MEASURED:
        return
    write = terminalreporter.write_line
    write("")
    write("CPU budgets of the hot path's pieces (median, microseconds):")
    write(f"{'piece':45s} {'median':>8s} {'budget':>8s}")
    for name, median_us, budget in _MEASURED:
        verdict = "" if budget is None else ("within" if median_us <= budget else "OVER")
        shown = "-" if budget is None else f"{budget:.2f}"
        write(f"{name:45s} {median_us:8.2f} {shown:>8s}  {verdict}")
