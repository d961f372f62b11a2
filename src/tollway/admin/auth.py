"""Bearer-token authentication: each request's `Principal`, read from the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tollway.admin.access import Principal
from tollway.admin.errors import unauthorized
from tollway.store import teams, users
from tollway.store.database import Store

_bearer = HTTPBearer(
    auto_error=False,
    description="an admin token (twa-...): TOLLWAY_ADMIN_TOKEN, the one printed at first "
    "start, POST /admin/v1/auth/login, or POST /admin/v1/users/{id}/tokens",
)
# Tokens are long random strings; anything much longer is not one.
MAX_TOKEN = 512


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@dataclass(frozen=True, slots=True)
class Context:
    store: Store
    principal: Principal


def _context(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Context:
    store = store_of(request)
    if credentials is None:
        raise unauthorized()
    if len(credentials.credentials) > MAX_TOKEN:
        raise unauthorized("the token is not valid")
    with store.read() as session:
        found = users.authenticate(session, credentials.credentials)
        if found is None:
            raise unauthorized("the token is unknown, expired or revoked")
        principal = Principal(
            user_id=found.user.id,
            name=found.user.name,
            is_admin=found.user.platform_role == "admin",
            roles=teams.roles_of(session, found.user.id),
        )
    return Context(store, principal)


Ctx = Annotated[Context, Depends(_context)]
