"""The first platform admin: from TOLLWAY_ADMIN_TOKEN, or a one-time token at first start.

`tollway serve` calls `bootstrap_admin` once at start. With a token from the environment, that
token (only its digest is stored) is made a live token of the first platform admin, created
as `admin` if there is none; a different token set earlier that way is revoked. Without one,
a store with no platform admin gets user `admin` and a freshly generated token, which the
caller prints once: it is never shown again. Starting again finds the admin and prints
nothing. `tollway admin-token` (offline, on the store) issues a new one for recovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from tollway.store import credentials, users
from tollway.store.database import SYSTEM, Store, Tx
from tollway.store.errors import Invalid
from tollway.store.schema import User, UserToken, utcnow

ADMIN_NAME = "admin"
MIN_ENV_TOKEN = 16


@dataclass(frozen=True, slots=True)
class Bootstrap:
    # The platform admin the token belongs to.
    admin: str
    # A new one-time token to show the operator, or None (nothing new to show).
    token: str | None
    # env: TOLLWAY_ADMIN_TOKEN is live; generated: `token` was just made; existing: admins
    # already existed and nothing was done.
    source: Literal["env", "generated", "existing"]


def _first_admin(tx: Tx) -> User:
    found = tx.session.scalars(
        select(User)
        .where(User.platform_role == "admin", User.disabled.is_(False))
        .order_by(User.id)
    ).first()
    if found is not None:
        return found
    return users.create(tx, ADMIN_NAME, display_name="Administrator", platform_role="admin")


def bootstrap_admin(store: Store, *, env_token: str | None) -> Bootstrap:
    """Makes sure someone can log in to the admin API (see the module's docstring)."""
    if env_token is not None and len(env_token) < MIN_ENV_TOKEN:
        raise Invalid.one(
            "TOLLWAY_ADMIN_TOKEN", f"must be at least {MIN_ENV_TOKEN} characters long"
        )
    with store.write(SYSTEM) as tx:
        if env_token is not None:
            return _from_env(tx, env_token)
        if users.admins_exist(tx.session):
            name = tx.session.scalars(
                select(User.name).where(User.platform_role == "admin").order_by(User.id)
            ).first()
            # Nothing changed: leave the version where it was.
            tx.discard()
            return Bootstrap(name or ADMIN_NAME, None, "existing")
        admin = _first_admin(tx)
        _, secret = users.create_token(tx, admin, "first start", source="bootstrap")
        return Bootstrap(admin.name, secret, "generated")


def _from_env(tx: Tx, env_token: str) -> Bootstrap:
    digest = credentials.digest(env_token)
    now = utcnow()
    current = tx.session.scalars(select(UserToken).where(UserToken.digest == digest)).first()
    if current is not None and current.revoked_at is None and current.source == "env":
        owner = tx.session.get(User, current.user_id)
        if owner is not None and owner.platform_role == "admin" and not owner.disabled:
            tx.discard()
            return Bootstrap(owner.name, None, "env")
    if current is not None:
        # The same secret was a token of another kind: take it over as the env token.
        tx.session.delete(current)
        tx.session.flush()
    for stale in tx.session.scalars(
        select(UserToken).where(UserToken.source == "env", UserToken.revoked_at.is_(None))
    ):
        stale.revoked_at = now
    admin = _first_admin(tx)
    users.create_token(tx, admin, "TOLLWAY_ADMIN_TOKEN", source="env", secret=env_token)
    return Bootstrap(admin.name, None, "env")


def issue_admin_token(store: Store, name: str = "recovery") -> Bootstrap:
    """A new token for the first platform admin (created if there is none)."""
    with store.write(SYSTEM) as tx:
        admin = _first_admin(tx)
        _, secret = users.create_token(tx, admin, name, source="bootstrap")
        return Bootstrap(admin.name, secret, "generated")
