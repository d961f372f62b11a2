"""Text the databases cannot store is refused up front, the same way on both back ends:
NUL characters (PostgreSQL refuses them) and lone surrogates (not encodable as UTF-8)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from tollway.store.errors import FieldProblem, Invalid


def _problems(value: Any, path: str, out: list[FieldProblem]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            out.append(FieldProblem(path, "must not contain NUL characters"))
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                out.append(FieldProblem(path, "is not valid Unicode text"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _problems(key, path, out)
            _problems(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _problems(item, f"{path}[{i}]", out)


async def storable_text(request: Request) -> None:
    """A router dependency: checks the query string, path and JSON body."""
    problems: list[FieldProblem] = []
    for name, value in request.query_params.multi_items():
        _problems(value, name, problems)
    for name, value in request.path_params.items():
        _problems(value, name, problems)
    if request.method in ("POST", "PUT", "PATCH"):
        raw = await request.body()
        if raw:
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                data = None  # the body's own validation reports it
            _problems(data, "", problems)
    if problems:
        raise Invalid(problems)
