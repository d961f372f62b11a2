"""Money spent since a moment, per key, app or team, from the rollups: what the budget
counters start from when a gateway starts.

Exact to the record (cost sums are Decimal on PostgreSQL; on SQLite the store's numbers
carry 15 significant digits), at minute resolution (a record in the minute `since` falls in
counts), and as of the last batch the recorder wrote: calls finished in the last flush
interval (about 0.2 s) are not in it yet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy import func, select, union_all

from tollway.analytics.rollups import pieces
from tollway.store.database import Store
from tollway.store.metering_schema import rollups

Scope = Literal["key", "app", "team"]
_COLUMN = {"key": "key_id", "app": "app_id", "team": "team_id"}


def spend_since(
    store: Store, scope: Scope, since: datetime, *, until: datetime | None = None
) -> dict[int, Decimal]:
    """USD spent since `since` (timezone-aware), by key, app or team id (ids with no spend
    are absent; calls of keys outside any app are not attributed to an app or team)."""
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    column = _COLUMN[scope]
    now = datetime.now(UTC)
    parts = []
    for grain, lo, hi in pieces(since, until or now, now):
        table = rollups[grain]
        parts.append(
            select(table.c[column].label("owner"), table.c.cost.label("cost")).where(
                table.c.bucket >= lo, table.c.bucket < hi, table.c[column] != 0
            )
        )
    if not parts:
        return {}
    combined = union_all(*parts).subquery()
    query = select(combined.c.owner, func.sum(combined.c.cost)).group_by(combined.c.owner)
    with store.read() as session:
        found = session.execute(query).all()
    return {int(owner): _money(total) for owner, total in found if total is not None}


def _money(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    # SQLite sums NUMERIC columns as floats: 15 significant digits are the stored ones.
    return Decimal(f"{value:.12f}") if isinstance(value, float) else Decimal(str(value))
