"""Input refused before any handler runs, the same way on both back ends: query parameters
the operation does not take (a misspelt filter must not silently list everything) or that
come twice, and text
the databases cannot store: NUL characters (PostgreSQL refuses them) and lone surrogates
(not encodable as UTF-8)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

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
    known = _query_names(request.scope.get("route"))
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if known is not None and name not in known:
            problems.append(FieldProblem(f"query.{name}", "unknown parameter"))
        elif name in seen:
            problems.append(FieldProblem(f"query.{name}", "given more than once"))
        seen.add(name)
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


_names: dict[int, frozenset[str]] = {}


def _query_names(route: object) -> frozenset[str] | None:
    """The query parameters an operation takes (its own and its dependencies')."""
    if not isinstance(route, APIRoute):
        return None
    found = _names.get(id(route))
    if found is None:
        found = frozenset(_walk(route.dependant))
        _names[id(route)] = found
    return found


def _walk(dependant: Dependant) -> list[str]:
    names = [param.alias for param in dependant.query_params]
    for inner in dependant.dependencies:
        names += _walk(inner)
    return names
