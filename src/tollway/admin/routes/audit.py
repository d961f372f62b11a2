"""/audit: who did what to which entity, when, with the change (secrets masked)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from tollway.admin.auth import Ctx
from tollway.admin.schemas import IdFilter, Limit, Out
from tollway.store import audit
from tollway.store.schema import AuditEntry

router = APIRouter(tags=["audit"])

Word = Annotated[str, Query(min_length=1, max_length=200)]


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    actor_id: int | None
    action: str
    entity_type: str
    entity_id: int | None
    entity: str
    team_id: int | None
    related_team_id: int | None
    config_version: int
    changes: dict[str, Any]


class AuditPage(Out):
    items: list[AuditOut]
    next_before: int | None


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        actor_id=entry.actor_id,
        action=entry.action,
        entity_type=entry.entity_type,
        entity_id=entry.entity_id,
        entity=entry.entity_name,
        team_id=entry.team_id,
        related_team_id=entry.related_team_id,
        config_version=entry.config_version,
        changes=entry.changes,
    )


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first")
def audit_log(
    ctx: Ctx,
    entity_type: Word | None = None,
    entity_id: IdFilter = None,
    actor: Word | None = None,
    action: Word | None = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="the previous page's next_before")
    ] = None,
    limit: Limit = 50,
) -> AuditPage:
    """Platform admins read every entry; team members their teams' entries."""
    with ctx.store.read() as session:
        rows = audit.entries(
            session,
            team_ids=ctx.principal.team_ids(),
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor,
            action=action,
            before_id=before,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        items=[audit_out(r) for r in rows], next_before=rows[-1].id if more and rows else None
    )
