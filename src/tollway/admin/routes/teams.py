"""/teams and /teams/{id}/members."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import Field, model_validator

from tollway.admin.auth import Ctx
from tollway.admin.conditional import IfMatch, tag
from tollway.admin.schemas import MAX_ID, After, Body, Id, Limit, Out, Page, Text
from tollway.config.entities import Name, TeamRole, UserName
from tollway.store import teams, users
from tollway.store.errors import Invalid
from tollway.store.schema import Team, TeamMember, User

router = APIRouter(tags=["teams"])


class TeamIn(Body):
    name: Name
    description: Text = ""


class TeamPatch(Body):
    name: Name | None = None
    description: Text | None = None


class TeamOut(Out):
    id: int
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    revision: int


def team_out(team: Team) -> TeamOut:
    return TeamOut(
        id=team.id,
        name=team.name,
        description=team.description,
        created_at=team.created_at,
        updated_at=team.updated_at,
        revision=team.revision,
    )


class MemberIn(Body):
    user: UserName | None = Field(None, description="the user's name (or give user_id)")
    user_id: int | None = Field(None, ge=1, le=MAX_ID)
    role: TeamRole

    @model_validator(mode="after")
    def _one(self) -> MemberIn:
        if (self.user is None) == (self.user_id is None):
            raise ValueError("give exactly one of user and user_id")
        return self


class MemberPatch(Body):
    role: TeamRole


class MemberOut(Out):
    user_id: int
    user: str
    role: str
    revision: int


def member_out(membership: TeamMember, user: User) -> MemberOut:
    return MemberOut(
        user_id=user.id, user=user.name, role=membership.role, revision=membership.revision
    )


@router.get("/teams", response_model=Page[TeamOut], summary="List teams")
def list_teams(
    ctx: Ctx, name: Name | None = None, after: After = None, limit: Limit = 50
) -> Page[TeamOut]:
    """Platform admins see every team; others see their own."""
    with ctx.store.read() as session:
        found = teams.listing(
            session, ids=ctx.principal.team_ids(), name=name, after=after, limit=limit
        )
        return Page(items=[team_out(t) for t in found.items], next_after=found.next_after)


@router.post(
    "/teams", response_model=TeamOut, status_code=status.HTTP_201_CREATED, summary="Create a team"
)
def create_team(body: TeamIn, ctx: Ctx, response: Response) -> TeamOut:
    ctx.principal.require_admin("create teams")
    with ctx.store.write(ctx.principal.actor) as tx:
        team = teams.create(tx, body.name, description=body.description)
    response.headers["Location"] = f"/admin/v1/teams/{team.id}"
    tag(response, team.revision)
    return team_out(team)


@router.get("/teams/{team_id}", response_model=TeamOut, summary="Read a team")
def get_team(team_id: Id, ctx: Ctx, response: Response) -> TeamOut:
    with ctx.store.read() as session:
        team = teams.get(session, team_id)
        ctx.principal.require_team(team.id, "viewer", "reading the team", "team", team_id)
    tag(response, team.revision)
    return team_out(team)


@router.patch("/teams/{team_id}", response_model=TeamOut, summary="Change a team")
def update_team(
    team_id: Id, body: TeamPatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> TeamOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        team = teams.get(tx.session, team_id)
        ctx.principal.require_team(team.id, "team_admin", "changing the team", "team", team_id)
        if body.name is not None and body.name != team.name:
            ctx.principal.require_admin("rename teams")
        team = teams.update(
            tx, team, expected_revision=if_match, name=body.name, description=body.description
        )
    tag(response, team.revision)
    return team_out(team)


@router.delete(
    "/teams/{team_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an empty team"
)
def delete_team(team_id: Id, ctx: Ctx, if_match: IfMatch) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        team = teams.get(tx.session, team_id)
        ctx.principal.require_team(team.id, "viewer", "deleting the team", "team", team_id)
        ctx.principal.require_admin("delete teams")
        teams.delete(tx, team, expected_revision=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/teams/{team_id}/members", response_model=list[MemberOut], summary="List a team's members"
)
def list_members(team_id: Id, ctx: Ctx) -> list[MemberOut]:
    with ctx.store.read() as session:
        team = teams.get(session, team_id)
        ctx.principal.require_team(team.id, "viewer", "reading members", "team", team_id)
        return [member_out(m, u) for m, u in teams.members(session, team.id)]


@router.post(
    "/teams/{team_id}/members",
    response_model=MemberOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a member",
)
def add_member(team_id: Id, body: MemberIn, ctx: Ctx, response: Response) -> MemberOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        team = teams.get(tx.session, team_id)
        ctx.principal.require_team(team.id, "team_admin", "adding members", "team", team_id)
        if body.user_id is not None:
            user = tx.session.get(User, body.user_id)
            if user is None:
                raise Invalid.one("user_id", f"unknown user {body.user_id}")
        else:
            assert body.user is not None
            found = users.find(tx.session, body.user)
            if found is None:
                raise Invalid.one("user", f"unknown user {body.user!r}")
            user = found
        membership = teams.add_member(tx, team, user, body.role)
    response.headers["Location"] = f"/admin/v1/teams/{team.id}/members/{user.id}"
    tag(response, membership.revision)
    return member_out(membership, user)


@router.patch(
    "/teams/{team_id}/members/{user_id}", response_model=MemberOut, summary="Change a role"
)
def set_role(
    team_id: Id, user_id: Id, body: MemberPatch, ctx: Ctx, response: Response, if_match: IfMatch
) -> MemberOut:
    with ctx.store.write(ctx.principal.actor) as tx:
        team = teams.get(tx.session, team_id)
        ctx.principal.require_team(team.id, "team_admin", "changing roles", "team", team_id)
        user = users.get(tx.session, user_id)
        membership = teams.set_role(tx, team, user, body.role, expected_revision=if_match)
    tag(response, membership.revision)
    return member_out(membership, user)


@router.delete(
    "/teams/{team_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member",
)
def remove_member(team_id: Id, user_id: Id, ctx: Ctx) -> Response:
    with ctx.store.write(ctx.principal.actor) as tx:
        team = teams.get(tx.session, team_id)
        # Anyone may leave a team; removing others takes its team_admin role.
        if user_id != ctx.principal.user_id:
            ctx.principal.require_team(team.id, "team_admin", "removing members", "team", team_id)
        else:
            ctx.principal.require_team(team.id, "viewer", "leaving", "team", team_id)
        user = users.get(tx.session, user_id)
        teams.remove_member(tx, team, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
