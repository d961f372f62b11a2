"""`tollway mock-provider` as a user runs it: how it starts, and how it refuses to."""

from __future__ import annotations

import subprocess
import sys

from servers import Process


def _mock_provider(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollway", "mock-provider", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_port_in_use_is_one_clear_line_and_status_1(mock: Process) -> None:
    result = _mock_provider("--port", str(mock.port))
    assert result.returncode == 1
    assert f"mock provider cannot listen on 127.0.0.1:{mock.port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_is_named_and_status_2() -> None:
    result = _mock_provider("--port", "0", "--fault", "chunks=-1")
    assert result.returncode == 2
    assert "bad value '-1' for mock setting 'chunks'" in result.stderr
