"""/users, /users/{id}/tokens, /auth/login and /me."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tollway.admin.auth import Ctx, store_of
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.errors import ApiError, forbidden, unauthorized
from tollway.admin.schemas import After, Body, Id, Label, Limit, Moment, Out, Page
from tollway.config.entities import PlatformRole, UserName
from tollway.store import credentials, teams, users
from tollway.store.database import SYSTEM
from tollway.store.errors import NotFound
from tollway.store.schema import Team, TeamMember, User, UserToken

router = APIRouter(tags=["users"])
public = APIRouter(tags=["users"])

Password = Annotated[
    str, Field(min_length=8, max_length=1024, json_schema_extra={"writeOnly": True})
]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class UserIn(Body):
    name: UserName
    display_name: Annotated[str, Field(max_length=200)] = ""
    email: Email | None = None
    platform_role: PlatformRole = "member"
    password: Password | None = None


class UserPatch(Body):
    display_name: Annotated[str, Field(max_length=200)] | None = None
    email: Email | None = None
    platform_role: PlatformRole | None = None
    disabled: bool | None = None
    password: Password | None = None
    current_password: Annotated[str, Field(max_length=1024)] | None = Field(
        None, description="required to change one's own password (unless a platform admin)"
    )


class UserOut(Out):
    id: int
    name: str
    display_name: str
    email: str | None
    platform_role: str
    disabled: bool
    has_password: bool
    created_at: datetime
    updated_at: datetime
    revision: int


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        display_name=user.display_name,
        email=user.email,
        platform_role=user.platform_role,
        disabled=user.disabled,
        has_password=user.password_hash is not None,
        created_at=user.created_at,
        updated_at=user.updated_at,
        revision=user.revision,
    )


class TokenIn(Body):
    name: Label
    expires_at: Moment | None = None


class TokenOut(Out):
    id: int
    name: str
    prefix: str
    source: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewToken(TokenOut):
    token: str = Field(description="the token itself: shown this once, never again")


def token_out(token: UserToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        source=token.source,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )


class LoginIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class LoginOut(Out):
    token: str
    expires_at: datetime | None
    user: UserOut


class Membership(Out):
    team_id: int
    team: str
    role: str


class MeOut(Out):
    user: UserOut
    teams: list[Membership]


def _visible_user(ctx: Ctx, session: Session, user_id: int) -> User:
    """Yourself, anyone sharing a team with you, or anyone for a platform admin."""
    user = users.get(session, user_id)
    if ctx.principal.is_admin or user.id == ctx.principal.user_id:
        return user
    shared = set(teams.roles_of(session, user.id)) & set(ctx.principal.roles)
    if not shared:
        raise NotFound("user", user_id)
    return user


@router.get("/users", response_model=Page[UserOut], summary="List users")
def list_users(
    ctx: Ctx,
    name: UserName | None = None,
    platform_role: PlatformRole | None = None,
    after: After = None,
    limit: Limit = 50,
) -> Page[UserOut]:
    """Platform admins see everyone; others see themselves and their teams' members."""
    with ctx.store.read() as session:
        ids: set[int] | None = None
        if not ctx.principal.is_admin:
            ids = {ctx.principal.user_id}
            if ctx.principal.roles:
                ids |= set(
                    session.scalars(
                        select(TeamMember.user_id).where(
                            TeamMember.team_id.in_(list(ctx.principal.roles))
                        )
                    )
                )
        found = users.listing(
            session, ids=ids, name=name, platform_role=platform_role, after=after, limit=limit
        )
        return Page(items=[user_out(u) for u in found.items], next_after=found.next_after)


@router.post(
    "/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, summary="Create a user"
)
def create_user(body: UserIn, ctx: Ctx, response: Response) -> UserOut:
    ctx.principal.require_admin("create users")
    with ctx.store.write(ctx.principal.actor) as tx:
        user = users.create(
            tx,
            body.name,
            display_name=body.display_name,
            email=body.email,
            platform_role=body.platform_role,
            password=body.password,
        )
    response.headers["Location"] = f"/admin/v1/users/{user.id}"
    tag(response, user.revision)
    return user_out(user)


@router.get("/users/{user_id}", response_model=UserOut, summary="Read a user")
def get_user(user_id: Id, ctx: Ctx, response: Response) -> UserOut:
    with ctx.store.read() as session:
        user = _visible_user(ctx, session, user_id)
    tag(response, user.revision)
    return user_out(user)


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change a user")
def update_user(
    user_id: Id, body: UserPatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> UserOut:
    me = ctx.principal
    with ctx.store.write(me.actor) as tx:
        user = _visible_user(ctx, tx.session, user_id)
        if not me.is_admin:
            if user.id != me.user_id:
                raise forbidden("only a platform admin may change other users")
            if body.platform_role is not None or body.disabled is not None:
                raise forbidden("only a platform admin may change roles or disable users")
            if (
                body.password is not None
                and user.password_hash is not None
                and not _password_matches(user.password_hash, body.current_password)
            ):
                raise ApiError(403, "give your current password to set a new one")
        user = users.update(
            tx,
            user,
            expected_revision=if_match,
            display_name=body.display_name,
            email=body.email,
            clear_email="email" in body.model_fields_set and body.email is None,
            platform_role=body.platform_role,
            disabled=body.disabled,
            password=body.password,
        )
    tag(response, user.revision)
    return user_out(user)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a user")
def delete_user(user_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        user = _visible_user(ctx, tx.session, user_id)
        ctx.principal.require_admin("delete users")
        users.delete(tx, user, expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _password_matches(password_hash: str, given: str | None) -> bool:
    return given is not None and credentials.verify_password(password_hash, given)


def _own_or_admin(ctx: Ctx, user_id: int) -> None:
    if not ctx.principal.is_admin and user_id != ctx.principal.user_id:
        raise NotFound("user", user_id)


@router.get(
    "/users/{user_id}/tokens", response_model=list[TokenOut], summary="List a user's tokens"
)
def list_tokens(user_id: Id, ctx: Ctx) -> list[TokenOut]:
    _own_or_admin(ctx, user_id)
    with ctx.store.read() as session:
        users.get(session, user_id)
        return [token_out(t) for t in users.tokens(session, user_id)]


@router.post(
    "/users/{user_id}/tokens",
    response_model=NewToken,
    status_code=status.HTTP_201_CREATED,
    summary="Create an admin-API token",
)
def create_token(user_id: Id, body: TokenIn, ctx: Ctx, response: Response) -> NewToken:
    """The token is in the answer, once; only its digest is stored."""
    _own_or_admin(ctx, user_id)
    with ctx.store.write(ctx.principal.actor) as tx:
        user = users.get(tx.session, user_id)
        token, secret = users.create_token(tx, user, body.name, expires_at=body.expires_at)
    response.headers["Location"] = f"/admin/v1/users/{user_id}/tokens/{token.id}"
    return NewToken(**token_out(token).model_dump(), token=secret)


@router.delete(
    "/users/{user_id}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token",
)
def revoke_token(user_id: Id, token_id: Id, ctx: Ctx) -> Response:
    _own_or_admin(ctx, user_id)
    with ctx.store.write(ctx.principal.actor) as tx:
        user = users.get(tx.session, user_id)
        users.revoke_token(tx, user, users.get_token(tx.session, user_id, token_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@public.post("/auth/login", response_model=LoginOut, summary="Log in with a password")
def login(body: LoginIn, request: Request) -> LoginOut:
    """Answers a session token valid for 12 hours."""
    store = store_of(request)
    with store.write(SYSTEM) as tx:
        found = users.login(tx, body.name, body.password)
        if found is None:
            raise unauthorized("wrong name or password")
        user, token, secret = found
    return LoginOut(token=secret, expires_at=token.expires_at, user=user_out(user))


@router.get("/me", response_model=MeOut, summary="Who am I")
def me(ctx: Ctx) -> MeOut:
    with ctx.store.read() as session:
        user = users.get(session, ctx.principal.user_id)
        rows = session.execute(
            select(Team.id, Team.name, TeamMember.role)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(TeamMember.user_id == user.id)
            .order_by(Team.name)
        )
        return MeOut(
            user=user_out(user),
            teams=[Membership(team_id=i, team=n, role=r) for i, n, r in rows],
        )
