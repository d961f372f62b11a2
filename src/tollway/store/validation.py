"""Pydantic validation errors as the store's `Invalid`, one problem per field."""

from __future__ import annotations

from pydantic import ValidationError

from tollway.store.errors import FieldProblem, Invalid


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def message(error_type: str, text: str) -> str:
    if error_type == "extra_forbidden":
        return "unknown field"
    for lead in ("Value error, ", "Assertion failed, "):
        if text.startswith(lead):
            return text[len(lead) :]
    return text


def invalid_from(exc: ValidationError, prefix: str = "") -> Invalid:
    return Invalid(
        [
            FieldProblem(field_path(tuple(e["loc"]), prefix), message(e["type"], e["msg"]))
            for e in exc.errors()
        ]
    )
