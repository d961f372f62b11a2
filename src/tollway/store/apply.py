"""Applying a declarative file to the store (`tollway apply`, `tollway import`).

Everything the file declares is created or brought up to date, in one transaction: it all
lands, or (on any problem) nothing does. Entities the file does not mention are left alone,
and of an entity it mentions only the fields it gives change. Applying the same file twice
changes nothing the second time (and leaves the config version as it was). A dry run does
the same work in a transaction that is rolled back, so its plan is exactly what would happen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from tollway.config.entities import ServiceConfig, ServiceSpec, UserConfig
from tollway.config.models import GatewayConfig, ModelConfig, ProviderConfig
from tollway.store import (
    apps,
    keys,
    llm_models,
    providers,
    services,
    subscriptions,
    teams,
    users,
    versions,
)
from tollway.store.audit import diff, masked
from tollway.store.database import Actor, Store, Tx
from tollway.store.errors import Conflict, FieldProblem, Invalid, NotFound
from tollway.store.schema import App, LlmModel, PriceEntry, Provider, Service, Team, TeamMember

APPLY = Actor("tollway apply")


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # create or update
    kind: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        mark = "+" if self.action == "create" else "~"
        text = f"{mark} {self.kind} {self.name}"
        if self.action == "update" and self.detail:
            parts = []
            for name, value in self.detail.items():
                if isinstance(value, dict) and set(value) == {"from", "to"}:
                    parts.append(f"{name}: {value['from']!r} -> {value['to']!r}")
                else:
                    parts.append(f"{name}: {value!r}")
            text += ": " + "; ".join(parts)
        return text


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    warnings: tuple[str, ...]
    # Whether the changes were written (False for a dry run or when there were none).
    applied: bool
    # The config version after the apply, when something was written.
    version: int | None

    def render(self) -> str:
        lines = [f"warning: {w}" for w in self.warnings]
        lines += [c.line() for c in self.changes] or ["no changes"]
        return "\n".join(lines)


def apply_config(
    store: Store,
    config: GatewayConfig,
    environ: Mapping[str, str],
    *,
    dry_run: bool = False,
    actor: Actor = APPLY,
) -> Plan:
    """Brings the store to what `config` declares (see the module docstring)."""
    with store.write(actor) as tx:
        applier = _Applier(tx, environ)
        applier.run(config)
        written = bool(applier.changes) and not dry_run
        if not written:
            tx.discard()
        version = tx.version if written else None
    return Plan(tuple(applier.changes), tuple(applier.warnings), written, version)


def is_empty(store: Store) -> bool:
    """No teams, apps, services, providers, models or prices (users may exist: the bootstrap
    admin does)."""
    with store.read() as session:
        for model in (Team, App, Service, Provider, LlmModel, PriceEntry):
            if session.scalar(select(func.count()).select_from(model)):
                return False
    return True


@contextmanager
def _at(path: str) -> Iterator[None]:
    """Problems raised inside name their place in the file."""
    try:
        yield
    except Invalid as exc:
        raise Invalid(
            [
                FieldProblem(f"{path}.{p.field}" if p.field else path, p.message)
                for p in exc.problems
            ]
        ) from None
    except (Conflict, NotFound) as exc:
        raise Invalid.one(path, str(exc)) from None


class _Applier:
    def __init__(self, tx: Tx, environ: Mapping[str, str]) -> None:
        self.tx = tx
        self.session = tx.session
        self.environ = environ
        self.changes: list[Change] = []
        self.warnings: list[str] = []

    def note(self, action: str, kind: str, name: str, detail: dict[str, Any] | None = None) -> None:
        self.changes.append(Change(action, kind, name, masked(detail or {})))

    def run(self, config: GatewayConfig) -> None:
        given = config.model_fields_set
        if "server" in given:
            self.warnings.append("server: boot settings are not stored (they stay in the file)")
        if config.keys:
            self.warnings.append(
                "keys: top-level keys belong to no app and are not stored; declare them under "
                "apps.TEAM.APP.keys"
            )
        for name, provider in config.providers.items():
            with _at(f"providers.{name}"):
                self.provider(name, provider)
        for name, model in config.models.items():
            with _at(f"models.{name}"):
                self.model(name, model)
        for name, entry in config.catalog.items():
            with _at(f"catalog.{name}"):
                _, created = llm_models.set_price(self.tx, name, entry)
                if created:
                    self.note("create", "price", name)
        for name, user in config.users.items():
            with _at(f"users.{name}"):
                self.user(name, user)
        for name, team in config.teams.items():
            with _at(f"teams.{name}"):
                self.team(
                    name,
                    team.description if "description" in team.model_fields_set else None,
                    team.members,
                )
        for team_name, declared in config.apps.items():
            for app_name, app in declared.items():
                with _at(f"apps.{team_name}.{app_name}"):
                    self.app(team_name, app_name, app)
        for team_name, declared_services in config.services.items():
            for service_name, service in declared_services.items():
                with _at(f"services.{team_name}.{service_name}"):
                    self.service(team_name, service_name, service)
        for i, subscription in enumerate(config.subscriptions):
            with _at(f"subscriptions[{i}]"):
                self.subscription(subscription.app, subscription.service, subscription.status)

    # --- providers, models, prices ----------------------------------------------------------

    def provider(self, name: str, wanted: ProviderConfig) -> None:
        row = providers.find(self.session, name)
        if row is None:
            providers.create(self.tx, name, wanted)
            self.note("create", "provider", name)
            return
        current = providers.config(self.tx.store, row, with_secrets=True)
        target = wanted
        if "credentials" not in wanted.model_fields_set and current.credentials is not None:
            # Stored credentials stay, except where the file now names an environment variable.
            kept = {
                n: v
                for n, v in providers.secret_values(current).items()
                if getattr(wanted, f"{n}_env") is None
            }
            target = ProviderConfig.model_validate(
                wanted.model_dump() | {"credentials": kept or None}
            )
        changes = diff(providers.settings_of(current), providers.settings_of(target))
        if providers.secret_values(current) != providers.secret_values(target):
            changes["credentials"] = "changed"
        if changes:
            providers.replace(self.tx, row, target, keep_credentials=False)
            self.note("update", "provider", name, changes)

    def model(self, name: str, wanted: ModelConfig) -> None:
        row = llm_models.find(self.session, name)
        if row is None:
            # The file's fallbacks were checked as a whole (they may name one another).
            llm_models.create(self.tx, name, wanted, check_fallbacks=False)
            self.note("create", "model", name)
            return
        current = llm_models.config(self.session, row)
        if current != wanted:
            llm_models.replace(self.tx, row, wanted, check_fallbacks=False)
            changed = {
                field: "changed"
                for field in type(wanted).model_fields
                if getattr(current, field) != getattr(wanted, field)
            }
            self.note("update", "model", name, changed)

    # --- users and teams ---------------------------------------------------------------------

    def user(self, name: str, wanted: UserConfig) -> None:
        row = users.find(self.session, name)
        password_hash = wanted.password_hash.get_secret_value() if wanted.password_hash else None
        if row is None:
            users.create(
                self.tx,
                name,
                display_name=wanted.display_name,
                email=wanted.email,
                platform_role=wanted.platform_role,
                password_hash=password_hash,
                disabled=wanted.disabled,
            )
            self.note("create", "user", name)
            return
        given = wanted.model_fields_set
        before = users.snapshot(row)
        new_hash = password_hash if password_hash != row.password_hash else None
        users.update(
            self.tx,
            row,
            display_name=wanted.display_name if "display_name" in given else None,
            email=wanted.email if "email" in given else None,
            clear_email="email" in given and wanted.email is None,
            platform_role=wanted.platform_role if "platform_role" in given else None,
            disabled=wanted.disabled if "disabled" in given else None,
            password_hash=new_hash,
        )
        changes = diff(before, users.snapshot(row))
        if new_hash is not None:
            changes["password"] = "changed"
        if changes:
            self.note("update", "user", name, changes)

    def team(self, name: str, description: str | None, members: Mapping[str, str]) -> None:
        row = teams.find(self.session, name)
        if row is None:
            row = teams.create(self.tx, name, description=description or "")
            self.note("create", "team", name)
        elif description is not None and description != row.description:
            changes = {"description": {"from": row.description, "to": description}}
            teams.update(self.tx, row, description=description)
            self.note("update", "team", name, changes)
        for user_name, role in members.items():
            with _at(f"members.{user_name}"):
                user = users.find(self.session, user_name)
                if user is None:
                    raise Invalid.one("", f"unknown user {user_name!r} (declare it in users)")
                membership = self.session.get(TeamMember, (row.id, user.id))
                if membership is None:
                    teams.add_member(self.tx, row, user, role)
                    self.note("create", "member", f"{name}/{user_name}", {"role": role})
                elif membership.role != role:
                    changes = {"role": {"from": membership.role, "to": role}}
                    teams.set_role(self.tx, row, user, role)
                    self.note("update", "member", f"{name}/{user_name}", changes)

    def _team(self, name: str) -> Team:
        found = teams.find(self.session, name)
        if found is None:
            raise Invalid.one("", f"unknown team {name!r} (declare it in teams)")
        return found

    # --- apps and keys -----------------------------------------------------------------------

    def app(self, team_name: str, name: str, wanted: Any) -> None:
        team = self._team(team_name)
        label = f"{team_name}/{name}"
        row = apps.find(self.session, team.id, name)
        if row is None:
            row = apps.create(
                self.tx, team, name, description=wanted.description, tools=_tools(wanted.tools)
            )
            self.note("create", "app", label)
        elif "description" in wanted.model_fields_set and wanted.description != row.description:
            changes = {"description": {"from": row.description, "to": wanted.description}}
            apps.update(self.tx, row, description=wanted.description)
            self.note("update", "app", label, changes)
        if "tools" in wanted.model_fields_set and _tools(wanted.tools) != row.tools:
            changes = {"tools": {"from": row.tools, "to": _tools(wanted.tools)}}
            apps.update(self.tx, row, tools=_tools(wanted.tools))
            self.note("update", "app", label, changes)
        for i, key in enumerate(wanted.keys):
            with _at(f"keys[{i}]"):
                self.key(row, label, key)

    def key(self, app: App, label: str, wanted: Any) -> None:
        if wanted.env_var is not None:
            secret = self.environ.get(wanted.env_var)
            if not secret:
                raise Invalid.one(
                    "api_key_env", f"environment variable {wanted.env_var} is not set"
                )
            digest = hashlib.sha256(secret.encode()).hexdigest()
        else:
            digest = wanted.key_sha256
        existing = keys.by_digest(self.session, digest)
        name = f"{label}/{wanted.name}"
        if existing is None:
            keys.register(
                self.tx,
                app,
                wanted.name,
                digest=digest,
                prefix=wanted.prefix,
                models=wanted.models,
                cidrs=wanted.cidrs,
                expires_at=wanted.expires_at,
                revoked_at=wanted.revoked_at,
            )
            self.note("create", "key", name, {"sha256": digest[:12]})
            return
        if existing.app_id != app.id:
            raise Invalid.one("", "this key is registered to another app")
        given = wanted.model_fields_set
        before = keys.snapshot(existing)
        changed = keys.declare(
            self.tx,
            app,
            existing,
            name=wanted.name,
            models=wanted.models if "models" in given else existing.allowed_models,
            cidrs=wanted.cidrs if "cidrs" in given else existing.allowed_cidrs,
            expires_at=wanted.expires_at if "expires_at" in given else existing.expires_at,
            revoked_at=wanted.revoked_at if "revoked_at" in given else existing.revoked_at,
        )
        if changed:
            self.note("update", "key", name, diff(before, keys.snapshot(existing)))

    # --- services and versions ---------------------------------------------------------------

    def service(self, team_name: str, name: str, wanted: ServiceConfig) -> None:
        team = self._team(team_name)
        label = f"{team_name}/{name}"
        row = services.find(self.session, team.id, name)
        if row is None:
            row = services.create(
                self.tx,
                team,
                name,
                kind=wanted.kind,
                route_prefix=wanted.route_prefix,
                visibility=wanted.visibility,
                approval=wanted.approval,
                description=wanted.description,
            )
            self.note("create", "service", label)
        else:
            if row.kind != wanted.kind:
                raise Invalid.one("kind", f"the service is of kind {row.kind}: kinds are fixed")
            given = wanted.model_fields_set
            settable = ("route_prefix", "visibility", "approval", "description")
            before = services.snapshot(row)
            services.update(self.tx, row, **{f: getattr(wanted, f) for f in settable if f in given})
            changes = diff(before, services.snapshot(row))
            if changes:
                self.note("update", "service", label, changes)
        # The published version goes last, so that it is the one left serving, then the canary
        # that runs beside it.
        last = {"published": 1, "canary": 2}
        ordered = sorted(wanted.versions.items(), key=lambda i: (last.get(i[1].status, 0), i[0]))
        for number, version in ordered:
            with _at(f"versions.{number}"):
                self.version(row, label, number, version)

    def version(self, service: Service, label: str, number: int, wanted: Any) -> None:
        spec = ServiceSpec.taken_from(wanted)
        stored = spec.model_dump(mode="json", exclude_none=True)
        try:
            row = versions.get(self.session, service.id, number)
        except NotFound:
            versions.create(
                self.tx,
                service,
                spec,
                notes=wanted.notes,
                number=number,
                status=wanted.status,
                weight=wanted.weight,
            )
            self.note("create", "version", f"{label} v{number}", {"status": wanted.status})
            return
        changes: dict[str, Any] = {}
        held = versions.as_given(row, self.tx.store)
        if held != stored or ("notes" in wanted.model_fields_set and row.notes != wanted.notes):
            if row.status != "draft":
                raise Invalid.one(
                    "",
                    f"version {number} is {row.status}: its content is frozen "
                    "(declare a new version)",
                )
            changes["content"] = "changed"
            versions.update(self.tx, service, row, spec=spec, notes=wanted.notes)
        if row.status != wanted.status:
            changes["status"] = {"from": row.status, "to": wanted.status}
            versions.set_status(self.tx, service, row, wanted.status, wanted.weight)
        elif row.status == "canary" and wanted.weight not in (None, row.traffic_weight):
            changes["weight"] = {"from": row.traffic_weight, "to": wanted.weight}
            versions.start_canary(self.tx, service, row, wanted.weight)
        if changes:
            self.note("update", "version", f"{label} v{number}", changes)

    # --- subscriptions -----------------------------------------------------------------------

    def subscription(self, app_name: str, service_name: str, status: str) -> None:
        app_team, _, app_short = app_name.partition("/")
        service_team, _, service_short = service_name.partition("/")
        app = apps.find(self.session, self._team(app_team).id, app_short)
        if app is None:
            raise Invalid.one("app", f"unknown app {app_name!r}")
        service = services.find(self.session, self._team(service_team).id, service_short)
        if service is None:
            raise Invalid.one("service", f"unknown service {service_name!r}")
        if service.visibility != "public" and service.team_id != app.team_id:
            raise Invalid.one("service", "the service is private to its team")
        before = subscriptions.find(self.session, app.id, service.id)
        previous = before.status if before is not None else None
        _, changed = subscriptions.declare(self.tx, app, service, status)
        if changed:
            name = f"{app_name} -> {service_name}"
            if previous is None:
                self.note("create", "subscription", name, {"status": status})
            else:
                self.note(
                    "update", "subscription", name, {"status": {"from": previous, "to": status}}
                )


def _tools(wanted: Any) -> dict[str, Any] | None:
    """An app's tool lists as the store keeps them (None: every tool it is offered)."""
    return None if wanted is None else wanted.model_dump(mode="json")
