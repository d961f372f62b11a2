"""What the store refuses, and why: each error maps to one HTTP status in the admin API."""

from __future__ import annotations

from dataclasses import dataclass


class StoreError(Exception):
    """Base class: `str()` is a sentence a person can act on."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    # Dotted path of the field in the request or file ("" for the whole entity).
    field: str
    message: str


class NotFound(StoreError):
    def __init__(self, entity: str, key: object) -> None:
        self.entity = entity
        self.key = key
        super().__init__(f"{entity} {key!r} not found")


class Conflict(StoreError):
    """A duplicate name, or a change that the entity's state does not allow."""

    def __init__(self, message: str, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class PreconditionFailed(StoreError):
    """The entity changed since the revision the caller read (a stale If-Match)."""

    @classmethod
    def stale(cls, entity: str, expected: int, current: int) -> PreconditionFailed:
        return cls(f"{entity} has changed: it is at revision {current}, If-Match named {expected}")


class Invalid(StoreError):
    """Input that is well-formed but refers to something that does not fit."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
        )

    @classmethod
    def one(cls, field: str, message: str) -> Invalid:
        return cls([FieldProblem(field, message)])


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened."""


class SchemaMismatch(StoreError):
    """The database's schema is newer than this Tollway, or not Tollway's."""


class SecretKeyError(StoreError):
    """Provider credentials cannot be sealed or opened with the configured secret key."""
