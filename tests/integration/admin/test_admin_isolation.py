"""Tenant isolation, by stateful property-based testing (hypothesis).

Each example makes two fresh teams, A and B, each with a team_admin, a developer and a
viewer, and plays a random sequence of actions through the admin API by random members of
either team: creating apps, keys, services and versions, subscribing, deciding, reading,
changing and deleting, and listing every collection. After every step:

- the answer is what the rules say (2xx, 403, 404, 409 or 422; never a 5xx), and any entity
  of the other team that is private answers 404, never 403;
- no list shows another team's apps, keys, private services, subscriptions, audit entries,
  members or users;
- the other team's own data (its team, members, apps, keys, services, versions, and the
  subscriptions between its own apps and services) is unchanged in the store: no row added,
  removed, or updated (every update bumps a row's revision).

The store keeps the teams of earlier examples, so "another team" also means each of those
(it is emptied every 25 examples, to keep lists short). In the suite (CI), 1,000 examples:
700 on SQLite and 300 on PostgreSQL (where each costs about twice as much), about four
minutes on 2 cores; TOLLWAY_ISOLATION_EXAMPLES sets another number per back end for a longer
run apart (the README's long tiers).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from tollway.config.models import ModelConfig, ProviderConfig
from tollway.store import SYSTEM, Store, llm_models, providers, teams, users

from control_plane import backend_params, reset, shared_store, start_server

EXAMPLES = {"sqlite": 700, "postgresql": 300}
if os.environ.get("TOLLWAY_ISOLATION_EXAMPLES"):
    EXAMPLES = dict.fromkeys(EXAMPLES, int(os.environ["TOLLWAY_ISOLATION_EXAMPLES"]))
TEAMS = ("A", "B")
ROLES = ("team_admin", "developer", "viewer")
RANK = {"viewer": 1, "developer": 2, "team_admin": 3}
MODEL = "iso-model"
RESET_EVERY = 25
_counter = itertools.count()


def _other(team: str) -> str:
    return "B" if team == "A" else "A"


class World:
    """The server and store the machine runs against, and one HTTP client per token."""

    def __init__(self, store: Store, base: str) -> None:
        self.store = store
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)

    def call(self, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
        response = self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code < 500, (method, path, response.status_code, response.text)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["status"] == response.status_code and "message" in error
        return response


_FINGERPRINT = text(
    """
    SELECT 'team', count(*), sum(revision), sum(id) FROM teams WHERE id = :team
    UNION ALL SELECT 'member', count(*), sum(revision), sum(user_id * 7 + length(role))
      FROM team_members WHERE team_id = :team
    UNION ALL SELECT 'app', count(*), sum(revision), sum(id) FROM apps WHERE team_id = :team
    UNION ALL SELECT 'key', count(*), sum(k.revision), sum(k.id) FROM api_keys k
      JOIN apps a ON a.id = k.app_id WHERE a.team_id = :team
    UNION ALL SELECT 'service', count(*), sum(revision), sum(id) FROM services
      WHERE team_id = :team
    UNION ALL SELECT 'version', count(*), sum(v.revision), sum(v.id * 4 + length(v.status))
      FROM service_versions v JOIN services s ON s.id = v.service_id WHERE s.team_id = :team
    UNION ALL SELECT 'own subscription', count(*), sum(x.revision), sum(x.id)
      FROM subscriptions x JOIN apps a ON a.id = x.app_id
      JOIN services s ON s.id = x.service_id WHERE a.team_id = :team AND s.team_id = :team
    """
)


def fingerprint(store: Store, team_id: int) -> tuple[Any, ...]:
    """Everything that team owns, summed up: any insert, delete or update (each bumps a
    row's revision) of its rows changes it."""
    with store.engine.connect() as connection:
        rows = connection.execute(_FINGERPRINT, {"team": team_id}).all()
        connection.rollback()
    return tuple(tuple(int(v or 0) if i else v for i, v in enumerate(row)) for row in rows)


class Isolation(RuleBasedStateMachine):
    world: World

    @initialize()
    def two_teams(self) -> None:
        n = next(_counter)
        if n % RESET_EVERY == 0:
            # Earlier examples' teams stay around as "other teams", a bounded number of them.
            seed(reset(self.world.store))
        self.team_ids: dict[str, int] = {}
        self.team_names: dict[str, str] = {}
        self.tokens: dict[tuple[str, str], str] = {}
        self.user_names: dict[str, set[str]] = {"A": set(), "B": set()}
        with self.world.store.write(SYSTEM) as tx:
            for letter in TEAMS:
                team = teams.create(tx, f"iso{n}-{letter.lower()}")
                self.team_ids[letter] = team.id
                self.team_names[letter] = team.name
                for role in ROLES:
                    user = users.create(tx, f"iso{n}-{letter.lower()}-{role}")
                    teams.add_member(tx, team, user, role)
                    _, token = users.create_token(tx, user, "iso")
                    self.tokens[(letter, role)] = token
                    self.user_names[letter].add(user.name)
        self.apps: list[tuple[str, int]] = []
        self.keys: list[tuple[str, int, int]] = []
        self.services: list[tuple[str, int, str]] = []
        self.subscriptions: list[tuple[int, str, str]] = []
        self.names = itertools.count()
        self.prints = {t: fingerprint(self.world.store, self.team_ids[t]) for t in TEAMS}
        self.actor: str | None = None

    # --- helpers -----------------------------------------------------------------------------

    def call(self, team: str, role: str, method: str, path: str, body: Any = None) -> Any:
        self.actor = team
        return self.world.call(self.tokens[(team, role)], method, path, body)

    def expect(self, response: httpx.Response, *allowed: int) -> None:
        assert response.status_code in allowed, (
            response.request.method,
            response.request.url.path,
            response.status_code,
            allowed,
            response.text,
        )

    @invariant()
    def the_other_team_is_untouched(self) -> None:
        if getattr(self, "actor", None) is None:
            return
        assert self.actor is not None
        other = _other(self.actor)
        now = fingerprint(self.world.store, self.team_ids[other])
        assert now == self.prints[other], f"team {other} changed by an action of {self.actor}"
        self.prints[self.actor] = fingerprint(self.world.store, self.team_ids[self.actor])
        self.actor = None

    # --- creating ----------------------------------------------------------------------------

    @rule(team=st.sampled_from(TEAMS), role=st.sampled_from(ROLES), into=st.sampled_from(TEAMS))
    def create_app(self, team: str, role: str, into: str) -> None:
        response = self.call(
            team,
            role,
            "POST",
            "/apps",
            {"team_id": self.team_ids[into], "name": f"app{next(self.names)}"},
        )
        if into != team:
            self.expect(response, 422)
        elif RANK[role] >= RANK["developer"]:
            self.expect(response, 201)
            self.apps.append((team, response.json()["id"]))
        else:
            self.expect(response, 403)

    @rule(
        team=st.sampled_from(TEAMS),
        role=st.sampled_from(ROLES),
        into=st.sampled_from(TEAMS),
        visibility=st.sampled_from(["public", "private"]),
        approval=st.sampled_from(["auto", "manual"]),
    )
    def create_service(
        self, team: str, role: str, into: str, visibility: str, approval: str
    ) -> None:
        name = f"svc{next(self.names)}"
        response = self.call(
            team,
            role,
            "POST",
            "/services",
            {
                "team_id": self.team_ids[into],
                "name": name,
                "kind": "ai",
                "route_prefix": f"/{self.team_names[into]}-{name}",
                "visibility": visibility,
                "approval": approval,
            },
        )
        if into != team:
            self.expect(response, 422)
            return
        if role != "team_admin":
            self.expect(response, 403)
            return
        self.expect(response, 201)
        service_id = response.json()["id"]
        version = self.call(
            team, role, "POST", f"/services/{service_id}/versions", {"models": [MODEL]}
        )
        self.expect(version, 201)
        self.expect(
            self.call(team, role, "POST", f"/services/{service_id}/versions/1/publish"), 200
        )
        self.services.append((team, service_id, visibility))

    @precondition(lambda self: bool(self.apps))
    @rule(data=st.data(), team=st.sampled_from(TEAMS), role=st.sampled_from(ROLES))
    def create_key(self, data: st.DataObject, team: str, role: str) -> None:
        owner, app_id = data.draw(st.sampled_from(self.apps))
        response = self.call(team, role, "POST", f"/apps/{app_id}/keys", {"name": "k"})
        if owner != team:
            self.expect(response, 404)
        elif RANK[role] >= RANK["developer"]:
            self.expect(response, 201)
            self.keys.append((team, app_id, response.json()["id"]))
        else:
            self.expect(response, 403)

    @precondition(lambda self: bool(self.apps) and bool(self.services))
    @rule(data=st.data(), team=st.sampled_from(TEAMS), role=st.sampled_from(ROLES))
    def subscribe(self, data: st.DataObject, team: str, role: str) -> None:
        app_team, app_id = data.draw(st.sampled_from(self.apps))
        service_team, service_id, visibility = data.draw(st.sampled_from(self.services))
        response = self.call(
            team, role, "POST", "/subscriptions", {"app_id": app_id, "service_id": service_id}
        )
        if app_team != team:
            self.expect(response, 422)
        elif RANK[role] < RANK["developer"]:
            self.expect(response, 403)
        elif visibility == "private" and service_team != team:
            self.expect(response, 422)
        else:
            self.expect(response, 201, 409)
            if response.status_code == 201:
                entry = (response.json()["id"], app_team, service_team)
                if entry not in self.subscriptions:
                    self.subscriptions.append(entry)

    # --- acting on what exists ---------------------------------------------------------------

    @precondition(lambda self: bool(self.apps))
    @rule(
        data=st.data(),
        team=st.sampled_from(TEAMS),
        role=st.sampled_from(ROLES),
        action=st.sampled_from(["get", "patch", "keys", "delete"]),
    )
    def touch_app(self, data: st.DataObject, team: str, role: str, action: str) -> None:
        owner, app_id = data.draw(st.sampled_from(self.apps))
        if owner == team and action == "delete":
            return  # deleting one's own app is fine; the machine keeps its apps
        method, path, body = {
            "get": ("GET", f"/apps/{app_id}", None),
            "patch": ("PATCH", f"/apps/{app_id}", {"description": "changed"}),
            "keys": ("GET", f"/apps/{app_id}/keys", None),
            "delete": ("DELETE", f"/apps/{app_id}", None),
        }[action]
        response = self.call(team, role, method, path, body)
        if owner != team:
            self.expect(response, 404)
        elif action == "patch" and role == "viewer":
            self.expect(response, 403)
        else:
            self.expect(response, 200)

    @precondition(lambda self: bool(self.keys))
    @rule(
        data=st.data(),
        team=st.sampled_from(TEAMS),
        role=st.sampled_from(ROLES),
        action=st.sampled_from(["get", "revoke", "rotate", "patch"]),
    )
    def touch_key(self, data: st.DataObject, team: str, role: str, action: str) -> None:
        owner, app_id, key_id = data.draw(st.sampled_from(self.keys))
        path = f"/apps/{app_id}/keys/{key_id}"
        method, path, body = {
            "get": ("GET", path, None),
            "revoke": ("POST", f"{path}/revoke", None),
            "rotate": ("POST", f"{path}/rotate", {"overlap_s": 0}),
            "patch": ("PATCH", path, {"models": ["x*"]}),
        }[action]
        response = self.call(team, role, method, path, body)
        if owner != team:
            self.expect(response, 404)
        elif action != "get" and role == "viewer":
            self.expect(response, 403)
        elif action == "get":
            self.expect(response, 200)
        else:
            self.expect(response, 200, 201, 409)
            if response.status_code == 201:
                self.keys.append((team, app_id, response.json()["id"]))

    @precondition(lambda self: bool(self.services))
    @rule(
        data=st.data(),
        team=st.sampled_from(TEAMS),
        role=st.sampled_from(ROLES),
        action=st.sampled_from(["get", "patch", "versions", "new_version", "rollback", "delete"]),
    )
    def touch_service(self, data: st.DataObject, team: str, role: str, action: str) -> None:
        owner, service_id, visibility = data.draw(st.sampled_from(self.services))
        if owner == team and action == "delete":
            return
        base = f"/services/{service_id}"
        method, path, body = {
            "get": ("GET", base, None),
            "patch": ("PATCH", base, {"description": "changed"}),
            "versions": ("GET", f"{base}/versions", None),
            "new_version": ("POST", f"{base}/versions", {"models": [MODEL]}),
            "rollback": ("POST", f"{base}/rollback", {}),
            "delete": ("DELETE", base, None),
        }[action]
        response = self.call(team, role, method, path, body)
        if owner != team and visibility == "private":
            self.expect(response, 404)
        elif owner != team:
            self.expect(response, 200 if action == "get" else 403)
        elif action in ("get", "versions"):
            self.expect(response, 200)
        elif role != "team_admin":
            self.expect(response, 403)
        else:
            self.expect(response, 200, 201, 409)

    @precondition(lambda self: bool(self.subscriptions))
    @rule(
        data=st.data(),
        team=st.sampled_from(TEAMS),
        role=st.sampled_from(ROLES),
        action=st.sampled_from(["get", "approve", "reject", "revoke", "cancel"]),
    )
    def decide(self, data: st.DataObject, team: str, role: str, action: str) -> None:
        subscription_id, app_team, service_team = data.draw(st.sampled_from(self.subscriptions))
        if action == "get":
            response = self.call(team, role, "GET", f"/subscriptions/{subscription_id}")
        else:
            body = {"reason": "r"} if action in ("reject", "revoke") else None
            response = self.call(
                team, role, "POST", f"/subscriptions/{subscription_id}/{action}", body
            )
        if team not in (app_team, service_team):
            self.expect(response, 404)
        elif action == "get":
            self.expect(response, 200)
        elif action == "cancel":
            allowed = team == app_team and RANK[role] >= RANK["developer"]
            self.expect(response, *((200, 409) if allowed else (403,)))
        else:
            allowed = team == service_team and role == "team_admin"
            self.expect(response, *((200, 409) if allowed else (403,)))

    # --- reading lists -----------------------------------------------------------------------

    @rule(
        team=st.sampled_from(TEAMS),
        role=st.sampled_from(ROLES),
        listing=st.sampled_from(
            ["teams", "apps", "services", "catalog", "subscriptions", "audit", "users", "keys"]
        ),
    )
    def lists_show_nothing_of_others(self, team: str, role: str, listing: str) -> None:
        mine = self.team_ids[team]
        name = self.team_names[team]

        def items(path: str) -> list[dict[str, Any]]:
            response = self.call(team, role, "GET", path)
            self.expect(response, 200)
            return list(response.json()["items"])

        if listing == "teams":
            assert [t["id"] for t in items("/teams")] == [mine]
        elif listing == "apps":
            assert all(a["team_id"] == mine for a in items("/apps?limit=500"))
        elif listing in ("services", "catalog"):
            for service in items(f"/{listing}?limit=500"):
                assert service["team_id"] == mine or service["visibility"] == "public"
        elif listing == "subscriptions":
            for subscription in items("/subscriptions?limit=500"):
                sides = (subscription["app"].split("/")[0], subscription["service"].split("/")[0])
                assert name in sides
        elif listing == "audit":
            for entry in items("/audit?limit=500"):
                assert mine in (entry["team_id"], entry["related_team_id"])
        elif listing == "users":
            assert {u["name"] for u in items("/users?limit=500")} <= self.user_names[team]
        else:
            for app_team, app_id in self.apps:
                if app_team == team:
                    assert all(k["app_id"] == app_id for k in items(f"/apps/{app_id}/keys"))


def seed(store: Store) -> None:
    """The one model every example's services grant."""
    with store.write(SYSTEM) as tx:
        providers.create(
            tx, "iso", ProviderConfig.model_validate({"base_url": "http://127.0.0.1:9/v1"})
        )
        llm_models.create(
            tx, MODEL, ModelConfig.model_validate({"deployments": [{"provider": "iso"}]})
        )


@pytest.fixture(scope="module", params=backend_params())
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    store = shared_store(str(request.param))
    server, base = start_server(store)
    world = World(store, base)
    yield world
    world.http.close()
    server.stop()


@pytest.mark.timeout(1200)
def test_tenant_isolation(world: World) -> None:
    global _counter
    _counter = itertools.count()
    Isolation.world = world
    run_state_machine_as_test(
        Isolation,
        settings=settings(
            max_examples=EXAMPLES[world.store.backend],
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
