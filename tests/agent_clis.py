"""The coding agents the client-fidelity tests drive (Claude Code, Codex CLI): found on PATH,
or the test fails naming the script that installs it. A developer without one may set the
agent's skip variable to skip its tests locally; CI never does."""

from __future__ import annotations

import os
import shutil

import pytest


def installed(binary: str, label: str, script: str, skip_env: str) -> str:
    found = shutil.which(binary)
    if found is not None:
        return found
    if os.environ.get(skip_env) == "1":
        pytest.skip(f"{label} is not installed and {skip_env}=1")
    pytest.fail(
        f"{label} (`{binary}`) is not installed: run {script} "
        f"(or set {skip_env}=1 to skip these tests on a developer machine)",
        pytrace=False,
    )
