"""Reading rows the same way everywhere: by id, page by page, with a revision check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from tollway.store.errors import NotFound, PreconditionFailed

T = TypeVar("T")

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    # The cursor for the next page (the last item's id), or None on the last page.
    next_after: int | None


def page(
    session: Session,
    query: Select[T],
    id_column: InstrumentedAttribute[int],
    *,
    after: int | None,
    limit: int,
) -> Page[T]:
    """Rows in id order after the cursor `after`; keyset paging, stable under inserts."""
    limit = max(1, min(limit, MAX_PAGE))
    if after is not None:
        query = query.where(id_column > after)
    rows = list(session.scalars(query.order_by(id_column).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, int(getattr(rows[-1], id_column.key)) if more and rows else None)


def by_id(session: Session, model: type[T], entity_id: int, label: str) -> T:
    """The row with this id; NotFound names `label` (e.g. "app")."""
    row = session.get(model, entity_id)
    if row is None:
        raise NotFound(label, entity_id)
    return row


def check_revision(row: Any, expected: int | None, label: str) -> None:
    """A stale If-Match (expected revision) fails the change."""
    if expected is not None and row.revision != expected:
        raise PreconditionFailed.stale(label, expected, row.revision)
