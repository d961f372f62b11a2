"""Builds the data plane's per-call modules as C extensions with Cython, when it can.

Everything else about the package is in pyproject.toml. The modules listed here are plain
Python, compiled as they are (no Cython-only syntax): where no extension is built (no C
compiler, `TOLLWAY_PURE_PYTHON=1` at install, or a module that fails to compile), Python
imports the same module from its source, and behaves the same, only slower. A `.pxd` file
beside a module declares its per-call classes as extension types with typed attributes (read
only here: the `.py` stays the source), so that compiled code reads their state as struct
fields rather than through CPython's generic attribute lookup. A built
extension is skipped at run time too when `TOLLWAY_PURE_PYTHON=1` is set (tollway/__init__.py),
which is how the suite runs on the pure-Python modules. docs/performance.md gives what
compiling buys.
"""

from __future__ import annotations

import os
from fnmatch import fnmatch
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
SOURCE = ROOT / "src" / "tollway"

# What runs on every call: the HTTP server and client, routing, the pipeline and the
# built-in policies, limits, the client APIs and the provider adapters' translations, and
# the worker's side of the call records.
HOT = (
    "proxy/*.py",
    "proxy/handlers/*.py",
    "policies/*.py",
    "limits/*.py",
    "llm/client_apis.py",
    "llm/stream_usage.py",
    "llm/sse.py",
    "llm/usage.py",
    "llm/produced.py",
    "llm/canonical.py",
    "llm/anthropic_messages.py",
    "llm/catalog.py",
    "providers/*.py",
    "analytics/sink.py",
    "analytics/wire.py",
    "analytics/redaction.py",
    "config/snapshot.py",
)
# Not worth compiling, or imported outside the data plane only. The batch, file and MCP
# handlers and the model list wait on files, processes and other servers, never on the CPU;
# compiled, they cost each worker ~2.3 MB of resident memory (docs/performance.md).
COLD = (
    "__init__.py",
    "registry.py",
    "config.py",
    "health_checks.py",
    "tunnel.py",
    "batch*.py",
    "files.py",
    "mcp*.py",
    "models.py",
)


def hot_modules() -> list[str]:
    found = {
        str(path.relative_to(ROOT))
        for pattern in HOT
        for path in SOURCE.glob(pattern)
        if not any(fnmatch(path.name, cold) for cold in COLD)
    }
    return sorted(found)


def extensions() -> list[object]:
    if os.environ.get("TOLLWAY_PURE_PYTHON"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # built without Cython: the pure-Python package
        return []
    built = cythonize(
        hot_modules(),
        build_dir="build/cython",
        language_level=3,
        nthreads=os.cpu_count() or 1,
        quiet=True,
        compiler_directives={"binding": True},
    )
    for extension in built:
        # A module that fails to compile stays pure Python instead of failing the install.
        extension.optional = True
        # Python's own flags (-O3 -g) make GCC take about three times as long on Cython's
        # large generated files, for no speed that shows in bench/inprocess.py, and debug
        # information nobody reads: these come after them and win.
        extension.extra_compile_args = ["-O2", "-g0"]
    return built


class ParallelBuild(build_ext):
    """Compiles the extensions on every core (setuptools compiles them one at a time)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1


setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuild})
