"""API keys of apps: generated here, shown once, kept as SHA-256 digest and visible prefix.

A key may expire, be revoked, and be rotated: rotation issues a new key with the same
settings and lets the old one live on for an overlap window, so that clients can switch
without an outage. A key may be limited to some models (names or globs) and to client
address ranges (CIDR).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.config.entities import normalise_network
from tollway.store import apps, credentials
from tollway.store.audit import diff
from tollway.store.database import Tx
from tollway.store.errors import Conflict, FieldProblem, Invalid, NotFound
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import ApiKey, App, utcnow

MAX_OVERLAP = timedelta(days=30)


def snapshot(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "models": key.allowed_models,
        "cidrs": key.allowed_cidrs,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }


def get(session: Session, app_id: int, key_id: int) -> ApiKey:
    key = by_id(session, ApiKey, key_id, "key")
    if key.app_id != app_id:
        raise NotFound("key", key_id)
    return key


def by_digest(session: Session, digest: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.digest == digest)).one_or_none()


def listing(
    session: Session,
    app_id: int,
    *,
    include_revoked: bool = True,
    after: int | None = None,
    limit: int = 50,
) -> Page[ApiKey]:
    query = select(ApiKey).where(ApiKey.app_id == app_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return page(session, query, ApiKey.id, after=after, limit=limit)


def _networks(cidrs: list[str] | None) -> list[str] | None:
    if cidrs is None:
        return None
    problems = []
    out = []
    for i, value in enumerate(cidrs):
        try:
            out.append(normalise_network(value))
        except ValueError as exc:
            problems.append(FieldProblem(f"cidrs[{i}]", str(exc)))
    if problems:
        raise Invalid(problems)
    return out


def _future(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid.one("expires_at", "must be in the future")


def create(
    tx: Tx,
    app: App,
    name: str,
    *,
    models: list[str] | None = None,
    cidrs: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the app; the key itself is returned once and never stored."""
    _future(expires_at)
    secret = credentials.generate(credentials.APP_KEY_PREFIX)
    key = _insert(
        tx,
        app,
        name,
        digest=credentials.digest(secret),
        prefix=credentials.visible_prefix(secret),
        models=models,
        cidrs=cidrs,
        expires_at=expires_at,
    )
    return key, secret


def register(
    tx: Tx,
    app: App,
    name: str,
    *,
    digest: str,
    prefix: str | None = None,
    models: list[str] | None = None,
    cidrs: list[str] | None = None,
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> ApiKey:
    """A key made elsewhere, known by its digest (declarative files, imports)."""
    return _insert(
        tx,
        app,
        name,
        digest=digest,
        prefix=prefix or digest[:8],
        models=models,
        cidrs=cidrs,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


def _insert(
    tx: Tx,
    app: App,
    name: str,
    *,
    digest: str,
    prefix: str,
    models: list[str] | None,
    cidrs: list[str] | None,
    expires_at: datetime | None,
    revoked_at: datetime | None = None,
    rotated_from: int | None = None,
) -> ApiKey:
    if by_digest(tx.session, digest) is not None:
        raise Conflict("this key is already registered", "key_sha256")
    key = ApiKey(
        app_id=app.id,
        name=name,
        prefix=prefix,
        digest=digest,
        allowed_models=models,
        allowed_cidrs=_networks(cidrs),
        expires_at=expires_at,
        revoked_at=revoked_at,
        rotated_from_id=rotated_from,
    )
    tx.session.add(key)
    tx.session.flush()
    tx.audit(
        "create",
        "key",
        f"{apps.label(tx.session, app)}/{name}",
        entity_id=key.id,
        team_id=app.team_id,
        changes=snapshot(key) | ({"rotated_from": rotated_from} if rotated_from else {}),
    )
    return key


_UNSET: Any = object()


def update(
    tx: Tx,
    app: App,
    key: ApiKey,
    *,
    expected_revision: int | None = None,
    name: str | None = None,
    models: list[str] | None = _UNSET,
    cidrs: list[str] | None = _UNSET,
    expires_at: datetime | None = _UNSET,
) -> ApiKey:
    """Changes a key's settings; pass None to lift a limit (models, cidrs, expiry)."""
    check_revision(key, expected_revision, f"key {key.prefix}")
    if key.revoked_at is not None:
        raise Conflict("the key is revoked: create a new one")
    before = snapshot(key)
    if name is not None:
        key.name = name
    if models is not _UNSET:
        key.allowed_models = models
    if cidrs is not _UNSET:
        key.allowed_cidrs = _networks(cidrs)
    if expires_at is not _UNSET:
        _future(expires_at)
        key.expires_at = expires_at
    changes = diff(before, snapshot(key))
    if changes:
        tx.session.flush()
        tx.audit(
            "update",
            "key",
            f"{apps.label(tx.session, app)}/{key.name}",
            entity_id=key.id,
            team_id=app.team_id,
            changes=changes,
        )
    return key


def revoke(tx: Tx, app: App, key: ApiKey, *, expected_revision: int | None = None) -> ApiKey:
    check_revision(key, expected_revision, f"key {key.prefix}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        tx.session.flush()
        tx.audit(
            "revoke",
            "key",
            f"{apps.label(tx.session, app)}/{key.name}",
            entity_id=key.id,
            team_id=app.team_id,
            changes={"revoked_at": key.revoked_at},
        )
    return key


def rotate(
    tx: Tx,
    app: App,
    key: ApiKey,
    *,
    overlap: timedelta,
    expires_at: datetime | None = None,
    expected_revision: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key with the old one's settings; the old one expires after `overlap` (at once
    for zero). Returns the new key and its secret (shown once)."""
    check_revision(key, expected_revision, f"key {key.prefix}")
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise Conflict("the key is revoked or expired: create a new one")
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise Invalid.one("overlap_s", f"must be between 0 and {int(MAX_OVERLAP.total_seconds())}")
    _future(expires_at)
    secret = credentials.generate(credentials.APP_KEY_PREFIX)
    new = _insert(
        tx,
        app,
        key.name,
        digest=credentials.digest(secret),
        prefix=credentials.visible_prefix(secret),
        models=key.allowed_models,
        cidrs=key.allowed_cidrs,
        expires_at=expires_at,
        rotated_from=key.id,
    )
    before = snapshot(key)
    if overlap == timedelta(0):
        key.revoked_at = now
    else:
        ends = now + overlap
        key.expires_at = ends if key.expires_at is None else min(key.expires_at, ends)
    tx.session.flush()
    tx.audit(
        "rotate",
        "key",
        f"{apps.label(tx.session, app)}/{key.name}",
        entity_id=key.id,
        team_id=app.team_id,
        changes=diff(before, snapshot(key)) | {"replaced_by": new.id},
    )
    return new, secret


def delete(tx: Tx, app: App, key: ApiKey) -> None:
    tx.audit(
        "delete",
        "key",
        f"{apps.label(tx.session, app)}/{key.name}",
        entity_id=key.id,
        team_id=app.team_id,
        changes=snapshot(key),
    )
    tx.session.delete(key)
    tx.session.flush()


def declare(
    tx: Tx,
    app: App,
    key: ApiKey,
    *,
    name: str,
    models: list[str] | None,
    cidrs: list[str] | None,
    expires_at: datetime | None,
    revoked_at: datetime | None,
) -> bool:
    """Sets a key's settings as a declarative file says; returns whether anything changed.
    A revoked key stays revoked."""
    if key.revoked_at is not None and revoked_at is None:
        raise Conflict("the key is revoked in the store: a revoked key cannot be restored")
    before = snapshot(key)
    key.name = name
    key.allowed_models = models
    key.allowed_cidrs = _networks(cidrs)
    key.expires_at = expires_at
    if key.revoked_at is None:
        key.revoked_at = revoked_at
    changes = diff(before, snapshot(key))
    if changes:
        tx.session.flush()
        tx.audit(
            "update",
            "key",
            f"{apps.label(tx.session, app)}/{key.name}",
            entity_id=key.id,
            team_id=app.team_id,
            changes=changes,
        )
    return bool(changes)
