"""Tollway: an AI gateway and API management platform."""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from typing import Any

__version__ = "0.1.0"


class _SourcesFirst:
    """Finds a Tollway module in its source where a compiled extension built beside it
    (setup.py) must not be used: always with TOLLWAY_PURE_PYTHON=1 (the package then runs as
    it does where no extension was built, which is how the suite checks that fallback), and
    otherwise when the source is newer than the extension (an editable install whose source
    was edited since it was built: the edit, not the stale build, must run)."""

    def __init__(self, always: bool) -> None:
        self.always = always

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not name.startswith("tollway.") or not path:
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name)
            if spec is None or spec.origin is None:
                continue
            if self.always or _stale_build_beside(spec.origin):
                return spec
            return None
        return None


_EDITED_AFTER_S = 2.0


def _stale_build_beside(source: str) -> bool:
    folder, _, file = source.rpartition(os.sep)
    stem = file[: -len(".py")] + "."
    try:
        built = [
            os.path.join(folder, f)
            for f in os.listdir(folder)
            if f.startswith(stem) and f.endswith(".so")
        ]
        newest = max(os.stat(b).st_mtime for b in built) if built else None
        # By seconds, not microseconds: an installer that writes the package's files in any
        # order (pip, from a wheel) must not pass its own build over.
        return newest is not None and os.stat(source).st_mtime > newest + _EDITED_AFTER_S
    except OSError:
        return False


sys.meta_path.insert(0, _SourcesFirst(always=bool(os.environ.get("TOLLWAY_PURE_PYTHON"))))


def data_plane_build() -> str:
    """How the data plane's modules run here: "compiled" (C extensions) or "pure Python"."""
    # Found, not imported: the package's root imports no part of the data plane.
    spec = importlib.util.find_spec("tollway.proxy.connection")
    origin = spec.origin if spec is not None else None
    return "pure Python" if (origin or "").endswith(".py") else "compiled"
