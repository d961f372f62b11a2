"""`TOLLWAY_BENCH_PURE=proxy.handlers,limits,...`: those of the package's modules (by dotted
prefix under `tollway.`) run from their sources while the rest of a compiled build stays
compiled, to find which modules compiling pays for. Imported by a benchmark before any of
tollway's modules, it installs its finder ahead of the package's own."""

from __future__ import annotations

import os
import sys
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from typing import Any

import tollway  # noqa: F401  (the package's finder first: this one goes before it)


class PureModules:
    def __init__(self, prefixes: list[str]) -> None:
        self.prefixes = tuple("tollway." + p for p in prefixes)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not path or not name.startswith(self.prefixes):
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name)
            if spec is not None and spec.origin is not None:
                return spec
        return None


_PURE = [p for p in os.environ.get("TOLLWAY_BENCH_PURE", "").split(",") if p]
if _PURE:
    sys.meta_path.insert(0, PureModules(_PURE))
