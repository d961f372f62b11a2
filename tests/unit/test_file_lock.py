"""The advisory file lock: one holder at a time, across threads as across processes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from pathlib import Path

from tollway.file_lock import exclusive


def test_a_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x-open"
    held = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with exclusive(path):
            order.append("first in")
            held.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        held.wait(10)
        with exclusive(path):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    held.wait(10)
    threads[1].join(0.3)  # the second thread cannot get in while the first holds the lock
    assert order == ["first in"]
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]


def test_another_process_waits_too(tmp_path: Path) -> None:
    path = tmp_path / "x-open"
    script = (
        "import sys; from pathlib import Path; from tollway.file_lock import exclusive\n"
        "with exclusive(Path(sys.argv[1])): print('in', flush=True)\n"
    )
    with exclusive(path):
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(1.0)
        assert child.returncode is None  # still waiting for the lock
    assert child.communicate(timeout=20)[0] == "in\n"
    assert child.returncode == 0
