"""Environment variables in a config file: `${NAME}` in a string value is replaced by the
variable's value when the file is read, `${NAME:-default}` falls back to `default` when the
variable is unset or empty, and `$$` is a literal `$`.

So one file serves several machines (an upstream's address, a region, a port). Secrets still
belong in the `*_env` fields (`api_key_env`...), which are handled as secrets, where a
reference becomes part of an ordinary value. A variable that is unset and has no default is an
error naming the field, never an empty string that would fail later and elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


def expand(data: Any, environ: Mapping[str, str], problems: list[str], where: str = "") -> Any:
    """`data` (parsed YAML) with every reference in its string values replaced; what cannot
    be replaced is appended to `problems` as `path: why`."""
    if isinstance(data, str):
        return _expand_text(data, environ, problems, where) if "$" in data else data
    if isinstance(data, dict):
        return {
            key: expand(value, environ, problems, f"{where}.{key}" if where else str(key))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [expand(item, environ, problems, f"{where}[{i}]") for i, item in enumerate(data)]
    return data


def _expand_text(text: str, environ: Mapping[str, str], problems: list[str], where: str) -> str:
    def replace(found: re.Match[str]) -> str:
        whole = found.group(0)
        if whole == "$$":
            return "$"
        name = found.group(1)
        if name is None:
            problems.append(
                f"{where}: {whole!r} is not a variable reference: write ${{NAME}} or "
                "${NAME:-default} (and $$ for a literal $)"
            )
            return whole
        value = environ.get(name)
        if value:
            return value
        default = found.group(2)
        if default is not None:
            return default
        problems.append(
            f"{where}: the environment variable {name} is not set "
            f"(give it a value, or a default: ${{{name}:-...}})"
        )
        return whole

    return _REFERENCE.sub(replace, text)
