"""The store: one database (SQLite or PostgreSQL), read and written in transactions.

Every write transaction first bumps the config version (`config_state.version`), so that
(1) the version moves in the same commit as the change it announces, (2) writers queue at
their start (the version row is locked until commit), which makes uniqueness checks and
state transitions race-free on both back ends, and (3) on PostgreSQL a NOTIFY on the channel
`tollway_config` (payload: the new version) reaches listeners when the change commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tollway.store import engine as engines
from tollway.store import migrate
from tollway.store.encryption import SecretBox, key_file_secret
from tollway.store.errors import (
    Conflict,
    PreconditionFailed,
    SchemaMismatch,
    SecretKeyError,
    StoreUnavailable,
)
from tollway.store.schema import AuditEntry, ConfigState

if TYPE_CHECKING:
    from tollway.store.state import ControlPlaneState

log = logging.getLogger("tollway.store")

# PostgreSQL LISTEN/NOTIFY channel announcing each new config version.
NOTIFY_CHANNEL = "tollway_config"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, for the audit log."""

    name: str
    user_id: int | None = None


SYSTEM = Actor("system")


class Tx:
    """A write transaction: its session, its actor, and the config version it creates."""

    def __init__(self, session: Session, actor: Actor, version: int, store: Store) -> None:
        self.session = session
        self.actor = actor
        self.version = version
        self.store = store
        self.discarded = False

    def discard(self) -> None:
        """Ends the transaction without writing anything (the version stays as it was)."""
        self.discarded = True

    def audit(
        self,
        action: str,
        entity_type: str,
        entity_name: str,
        *,
        entity_id: int | None,
        team_id: int | None = None,
        related_team_id: int | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> None:
        """Records the change in the audit log (secrets masked); the entry is visible to
        `team_id`'s members and, for entities between two teams, `related_team_id`'s."""
        from tollway.store.audit import masked

        self.session.add(
            AuditEntry(
                actor_id=self.actor.user_id,
                actor=self.actor.name,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                entity_name=entity_name[:300],
                team_id=team_id,
                related_team_id=related_team_id,
                config_version=self.version,
                changes=masked(dict(changes or {})),
            )
        )


class Store:
    """A handle on one control-plane database. Thread-safe; open it once per process."""

    def __init__(self, engine: Engine, url: URL, box: SecretBox | None) -> None:
        self.engine = engine
        self.url = url
        self.backend = url.get_backend_name()
        self._box = box
        self._write_engine = engine.execution_options(**{engines.WRITE: True})
        # An in-memory SQLite database is one connection: its users take turns.
        self._lock: threading.RLock | None = threading.RLock() if engines.is_memory(url) else None

    @property
    def description(self) -> str:
        return engines.describe(self.url)

    def _turn(self) -> AbstractContextManager[object]:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def read(self, *, consistent: bool = False) -> Iterator[Session]:
        """A read-only transaction. `consistent`: every query sees the same snapshot (on
        PostgreSQL, REPEATABLE READ: it costs a round trip; SQLite's transactions always do)."""
        bind = self.engine
        if consistent and self.backend == "postgresql":
            bind = bind.execution_options(isolation_level="REPEATABLE READ")
        with self._turn(), _translated(), Session(bind, expire_on_commit=False) as session:
            # Closing the session rolls its transaction back: nothing is written here.
            yield session

    @contextmanager
    def write(self, actor: Actor) -> Iterator[Tx]:
        """A write transaction: all of its changes commit together, with a new version."""
        with (
            self._turn(),
            _translated(),
            Session(self._write_engine, expire_on_commit=False) as session,
        ):
            session.begin()
            try:
                version = session.execute(
                    update(ConfigState)
                    .where(ConfigState.id == 1)
                    .values(version=ConfigState.version + 1)
                    .returning(ConfigState.version)
                ).scalar_one()
                if self.backend == "postgresql":
                    session.execute(select(func.pg_notify(NOTIFY_CHANNEL, str(version))))
                tx = Tx(session, actor, version, self)
                yield tx
                if tx.discarded:
                    session.rollback()
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                raise

    def current_version(self) -> int:
        """The config version: cheap to read, moves with every committed change."""
        with self._turn(), _translated(), self.engine.connect() as connection:
            value = connection.execute(
                select(ConfigState.version).where(ConfigState.id == 1)
            ).scalar_one()
            connection.rollback()
            return int(value)

    def load_state(self) -> ControlPlaneState:
        """The whole control-plane state, as immutable objects, at one version."""
        from tollway.store.state import load

        with self.read(consistent=True) as session:
            return load(session, self)

    def seal(self, values: dict[str, str]) -> str:
        return self._secret_box().seal(values)

    def unseal(self, sealed: str) -> dict[str, str]:
        return self._secret_box().open(sealed)

    def _secret_box(self) -> SecretBox:
        if self._box is None:
            raise SecretKeyError(
                "provider credentials need a secret key: set TOLLWAY_SECRET_KEY "
                "(`tollway secret-key` prints a new one)"
            )
        return self._box

    def close(self) -> None:
        self.engine.dispose()

    def forget_connections(self) -> None:
        """In a process forked from the store's owner: drop the inherited pool without
        closing its connections, which belong to the parent (SQLAlchemy's fork recipe)."""
        self.engine.dispose(close=False)


@contextmanager
def _translated() -> Iterator[None]:
    """Database errors as store errors: a lost race on a unique name is a conflict, a row
    changed under an update a failed precondition, an unreachable server unavailable."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(f"the change conflicts with existing data ({_first_line(exc)})") from exc
    except StaleDataError as exc:
        raise PreconditionFailed(
            "the entity was changed by another request at the same time: read it again"
        ) from exc
    except OperationalError as exc:
        raise StoreUnavailable(f"the store failed: {_first_line(exc)}") from exc


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__


def open_store(
    *,
    data_dir: str | Path | None = None,
    store: str | None = None,
    secret_key: str | None = None,
    apply_migrations: bool = True,
) -> Store:
    """Open (and by default migrate) the store in a data directory or at a database URL.

    A data directory is created when missing and holds `tollway.db` (SQLite, WAL); without a
    `secret_key` it also holds a generated one (`secret.key`). `store` takes
    `postgresql://USER:PASSWORD@HOST:PORT/DB` or `sqlite:///FILE` (`sqlite://` in memory).
    """
    url = engines.url_for(data_dir=data_dir, store=store)
    if secret_key is None and data_dir is not None:
        secret_key = key_file_secret(Path(data_dir))
    box = SecretBox(secret_key) if secret_key is not None else None
    with engines.opening(url):
        engine = engines.create(url)
        _prepare(engine, url, apply_migrations)
    return Store(engine, url, box)


def _prepare(engine: Engine, url: URL, apply_migrations: bool) -> None:
    """Connect, and migrate (or check the schema revision); the engine is disposed on failure."""
    try:
        with engine.connect() as connection:
            connection.rollback()
        if apply_migrations:
            before, after = migrate.upgrade(engine)
            if before != after:
                log.info("store %s migrated from %s to %s", engines.describe(url), before, after)
        else:
            with engine.connect() as connection:
                at = migrate.current(connection)
            if at != migrate.head():
                raise SchemaMismatch(
                    f"the store is at schema revision {at}, this Tollway needs "
                    f"{migrate.head()}: run `tollway migrate`"
                )
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        raise StoreUnavailable(
            f"cannot open the store {engines.describe(url)}: {_first_line(exc)}"
        ) from None
    except BaseException:
        engine.dispose()
        raise
