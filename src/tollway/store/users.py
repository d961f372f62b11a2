"""Users, their platform role, passwords, and their admin-API tokens.

A platform admin manages everything; a member acts through the roles it holds in teams. The
store keeps at least one enabled platform admin: demoting, disabling or deleting the last
one is refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tollway.store import credentials
from tollway.store.database import Actor, Tx
from tollway.store.errors import Conflict, Invalid, NotFound
from tollway.store.queries import Page, by_id, check_revision, page
from tollway.store.schema import User, UserToken, utcnow

LOGIN_TOKEN_TTL = timedelta(hours=12)


def snapshot(user: User) -> dict[str, Any]:
    """The user's fields as the audit log records them (the password only as a mask)."""
    return {
        "name": user.name,
        "display_name": user.display_name,
        "email": user.email,
        "platform_role": user.platform_role,
        "disabled": user.disabled,
        "password": user.password_hash is not None,
    }


def find(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).one_or_none()


def get(session: Session, user_id: int) -> User:
    return by_id(session, User, user_id, "user")


def create(
    tx: Tx,
    name: str,
    *,
    display_name: str = "",
    email: str | None = None,
    platform_role: str = "member",
    password: str | None = None,
    password_hash: str | None = None,
    disabled: bool = False,
) -> User:
    if find(tx.session, name) is not None:
        raise Conflict(f"a user named {name!r} already exists", "name")
    if password is not None:
        password_hash = credentials.hash_password(password)
    user = User(
        name=name,
        display_name=display_name,
        email=email,
        platform_role=platform_role,
        password_hash=password_hash,
        disabled=disabled,
    )
    tx.session.add(user)
    tx.session.flush()
    tx.audit("create", "user", name, entity_id=user.id, changes=snapshot(user))
    return user


def listing(
    session: Session,
    *,
    ids: Collection[int] | None = None,
    name: str | None = None,
    platform_role: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page[User]:
    query: Select[User] = select(User)
    if ids is not None:
        query = query.where(User.id.in_(list(ids)))
    if name is not None:
        query = query.where(User.name == name)
    if platform_role is not None:
        query = query.where(User.platform_role == platform_role)
    return page(session, query, User.id, after=after, limit=limit)


def update(
    tx: Tx,
    user: User,
    *,
    expected_revision: int | None = None,
    display_name: str | None = None,
    email: str | None = None,
    clear_email: bool = False,
    platform_role: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    password_hash: str | None = None,
) -> User:
    check_revision(user, expected_revision, f"user {user.name}")
    before = snapshot(user)
    if display_name is not None:
        user.display_name = display_name
    if email is not None or clear_email:
        user.email = email
    if platform_role is not None:
        user.platform_role = platform_role
    if disabled is not None:
        user.disabled = disabled
    if password is not None:
        user.password_hash = credentials.hash_password(password)
    elif password_hash is not None:
        user.password_hash = password_hash
    was_admin = before["platform_role"] == "admin" and not before["disabled"]
    if was_admin and (user.platform_role != "admin" or user.disabled):
        _keep_an_admin(tx.session, user.id)
    changes = _changes(before, snapshot(user), password_changed=password is not None)
    if changes:
        tx.session.flush()
        tx.audit("update", "user", user.name, entity_id=user.id, changes=changes)
    return user


def delete(tx: Tx, user: User, *, expected_revision: int | None = None) -> None:
    check_revision(user, expected_revision, f"user {user.name}")
    if user.platform_role == "admin" and not user.disabled:
        _keep_an_admin(tx.session, user.id)
    tx.audit("delete", "user", user.name, entity_id=user.id, changes=snapshot(user))
    tx.session.delete(user)
    tx.session.flush()


def _changes(
    before: dict[str, Any], after: dict[str, Any], *, password_changed: bool
) -> dict[str, Any]:
    from tollway.store.audit import diff

    changes = diff(before, after)
    if password_changed:
        changes["password"] = {"from": "***", "to": "***"}
    return changes


def _keep_an_admin(session: Session, leaving: int) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.platform_role == "admin", User.disabled.is_(False), User.id != leaving)
    )
    if not others:
        raise Conflict("this is the last enabled platform admin: make another one first")


def admins_exist(session: Session) -> bool:
    return bool(
        session.scalar(select(func.count()).select_from(User).where(User.platform_role == "admin"))
    )


# --- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    token: UserToken


def create_token(
    tx: Tx,
    user: User,
    name: str,
    *,
    expires_at: datetime | None = None,
    source: str = "api",
    secret: str | None = None,
) -> tuple[UserToken, str]:
    """A new token for the user; the token itself is returned once and never stored."""
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid.one("expires_at", "must be in the future")
    secret = secret or credentials.generate(credentials.ADMIN_TOKEN_PREFIX)
    digest = credentials.digest(secret)
    if tx.session.scalars(select(UserToken.id).where(UserToken.digest == digest)).first():
        raise Conflict("this token is already in use", "token")
    token = UserToken(
        user_id=user.id,
        name=name,
        source=source,
        prefix=credentials.visible_prefix(secret),
        digest=digest,
        expires_at=expires_at,
    )
    tx.session.add(token)
    tx.session.flush()
    tx.audit(
        "create",
        "user_token",
        f"{user.name}/{name}",
        entity_id=token.id,
        changes={"user": user.name, "name": name, "source": source, "expires_at": expires_at},
    )
    return token, secret


def tokens(session: Session, user_id: int) -> list[UserToken]:
    return list(
        session.scalars(
            select(UserToken).where(UserToken.user_id == user_id).order_by(UserToken.id)
        )
    )


def get_token(session: Session, user_id: int, token_id: int) -> UserToken:
    token = by_id(session, UserToken, token_id, "token")
    if token.user_id != user_id:
        raise NotFound("token", token_id)
    return token


def revoke_token(tx: Tx, user: User, token: UserToken) -> UserToken:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        tx.session.flush()
        tx.audit(
            "revoke",
            "user_token",
            f"{user.name}/{token.name}",
            entity_id=token.id,
            changes={"revoked_at": token.revoked_at},
        )
    return token


def authenticate(session: Session, secret: str) -> Authenticated | None:
    """The user behind a bearer token, if the token is known, live and its user enabled."""
    row = session.execute(
        select(UserToken, User)
        .join(User, User.id == UserToken.user_id)
        .where(UserToken.digest == credentials.digest(secret))
    ).one_or_none()
    if row is None:
        return None
    token, user = row
    now = utcnow()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if user.disabled:
        return None
    return Authenticated(user, token)


def login(tx: Tx, name: str, password: str) -> tuple[User, UserToken, str] | None:
    """Password login: a session token (12 hours), or None for a wrong name or password."""
    user = find(tx.session, name)
    if user is None or user.password_hash is None:
        credentials.spend_verification(password)
        return None
    if not credentials.verify_password(user.password_hash, password) or user.disabled:
        return None
    tx.actor = Actor(user.name, user.id)
    token, secret = create_token(
        tx, user, "login", expires_at=utcnow() + LOGIN_TOKEN_TTL, source="login"
    )
    return user, token, secret
