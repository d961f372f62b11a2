"""Who may do what: the platform role, and each user's role in each team.

- A platform admin may do everything.
- In its team, a `team_admin` manages the team (members, services, versions, approvals), a
  `developer` manages the team's apps and keys and subscribes them, a `viewer` reads.
- Everyone signed in reads the model list and the catalog (public services, and the private
  ones of their own teams).
- Another team's private entity answers 404, exactly as one that does not exist; a public
  service of another team can be read but not changed (403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tollway.admin.errors import forbidden
from tollway.store.database import Actor
from tollway.store.errors import NotFound

Role = Literal["viewer", "developer", "team_admin"]
_RANK = {"viewer": 1, "developer": 2, "team_admin": 3}


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    is_admin: bool
    # team id -> role in that team
    roles: dict[int, str] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.user_id)

    def team_ids(self) -> set[int] | None:
        """The teams whose data the principal may read; None for all (platform admin)."""
        return None if self.is_admin else set(self.roles)

    def is_member(self, team_id: int) -> bool:
        return self.is_admin or team_id in self.roles

    def has(self, team_id: int, at_least: Role) -> bool:
        if self.is_admin:
            return True
        role = self.roles.get(team_id)
        return role is not None and _RANK[role] >= _RANK[at_least]

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise forbidden(f"only a platform admin may {what}")

    def require_team(
        self, team_id: int, at_least: Role, what: str, entity: str, key: object
    ) -> None:
        """Outsiders get NotFound for `entity` `key` (its existence does not leak); members
        with too small a role get 403 saying what it takes."""
        if self.is_admin:
            return
        role = self.roles.get(team_id)
        if role is None:
            raise NotFound(entity, key)
        if _RANK[role] < _RANK[at_least]:
            raise forbidden(f"{what} takes the {at_least} role in the team (you are {role})")

    def require_service(
        self,
        team_id: int,
        visibility: str,
        at_least: Role | None,
        what: str,
        key: object,
    ) -> None:
        """Reading (`at_least` None) a public service is open to all; changing it takes a
        role in its team. A private service is the team's alone."""
        if self.is_admin or team_id in self.roles:
            if at_least is not None:
                self.require_team(team_id, at_least, what, "service", key)
            return
        if visibility != "public":
            raise NotFound("service", key)
        if at_least is not None:
            raise forbidden(f"{what} takes the {at_least} role in the service's team")
