"""The audit log: who did what to which entity, when, and the change, secrets masked.

Entries are written by `Tx.audit` inside the transaction that makes the change, so the log
and the data never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from tollway.store.schema import AuditEntry

MASK = "***"
# Field names whose values never reach the log.
SECRET_FIELDS = frozenset(
    {
        "credentials",
        "password",
        "password_hash",
        "api_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "key",
        "token",
        "secret",
        "sealed_credentials",
        "bearer_token",
        "sealed_token",
    }
)


def masked(value: Any, name: str = "") -> Any:
    """A JSON-ready copy of `value` with every secret replaced by '***'."""
    if name in SECRET_FIELDS and value is not None:
        if isinstance(value, Mapping):
            return {str(k): MASK for k in value}
        return MASK
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that changed, each as {"from": old, "to": new}."""
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def entries(
    session: Session,
    *,
    team_ids: Collection[int] | None = None,
    entity_type: str | None = None,
    entity_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Newest first. `team_ids` limits the entries to those teams' entities (None: all)."""
    query: Select[AuditEntry] = select(AuditEntry)
    if team_ids is not None:
        ids = list(team_ids)
        query = query.where(or_(AuditEntry.team_id.in_(ids), AuditEntry.related_team_id.in_(ids)))
    if entity_type is not None:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
