"""Store back ends for the control-plane tests: SQLite files and a real PostgreSQL.

PostgreSQL comes from TOLLWAY_TEST_POSTGRES_URL (CI: `.ci/run` starts Debian's server, see
scripts/ci-postgres) or, without it, from a throwaway cluster this module starts with the
PostgreSQL binaries installed on the machine (initdb/pg_ctl from /usr/lib/postgresql/*/bin;
as root they run as the `postgres` user). Either way each test session gets a database of
its own, emptied between tests. Without either, the PostgreSQL half fails with instructions;
TOLLWAY_TEST_POSTGRES=off leaves it out on purpose (never in CI).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tollway.admin.app import create_admin_app
from tollway.admin.server import AdminServer, bind
from tollway.store import SYSTEM, Store, open_store, teams, users
from tollway.store.schema import Base

SECRET = "test-secret-key-0123456789abcdef-0123456789"
POSTGRES_OFF = os.environ.get("TOLLWAY_TEST_POSTGRES", "").lower() == "off"
BACKENDS = ["sqlite"] if POSTGRES_OFF else ["sqlite", "postgresql"]


class PostgresCluster:
    """A PostgreSQL cluster of our own in a temporary directory (`pause` and `resume` stop
    and start the server, for outage tests)."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            raise RuntimeError(
                "no PostgreSQL for the store tests: install it (apt-get install postgresql) "
                "or set TOLLWAY_TEST_POSTGRES_URL=postgresql://USER:PASSWORD@HOST/DB "
                "(TOLLWAY_TEST_POSTGRES=off runs the SQLite half only)"
            )
        self.bin = Path(binaries[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="tollway-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.resume()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        atexit.register(self.stop)

    def resume(self) -> None:
        """Start the server (again)."""
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def pause(self) -> None:
        """Stop the server, dropping every connection; the data stays for `resume`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{done.stdout}\n{done.stderr}")

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_lock = threading.Lock()
_state: dict[str, Any] = {}


def postgres_database() -> str:
    """The URL of a database for this test session (created once, dropped at exit)."""
    with _lock:
        if "url" in _state:
            return str(_state["url"])
    url = new_database(postgres_server())
    with _lock:
        _state.setdefault("url", url)
        return str(_state["url"])


def new_database(server: str) -> str:
    """A database of its own on the server at `server` (a URL), dropped at exit."""
    name = f"tollway_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with contextlib.suppress(Exception), admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    atexit.register(drop)
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def postgres_server() -> str:
    """The URL of the session's PostgreSQL server (TOLLWAY_TEST_POSTGRES_URL or a cluster of
    this module's), for tests that want a database of their own (`new_database`)."""
    with _lock:
        if "server" not in _state:
            server = os.environ.get("TOLLWAY_TEST_POSTGRES_URL")
            if not server:
                cluster = _state.get("cluster") or PostgresCluster()
                _state["cluster"] = cluster
                server = cluster.url
            _state["server"] = server
        return str(_state["server"])


def shared_store(backend: str) -> Store:
    """One store per back end for the whole session; `reset` empties it between tests."""
    with _lock:
        key = f"store-{backend}"
        if key not in _state:
            if backend == "sqlite":
                directory = Path(tempfile.mkdtemp(prefix="tollway-sqlite-"))
                atexit.register(shutil.rmtree, directory, True)
                _state[key] = open_store(data_dir=directory, secret_key=SECRET)
            else:
                _state[key] = None
        if _state[key] is not None:
            return _state[key]  # type: ignore[no-any-return]
    store = open_store(store=postgres_database(), secret_key=SECRET)
    with _lock:
        _state[key] = store
    return store


def reset(store: Store) -> Store:
    """Empties the store (tables and config version; ids start at 1 again), keeping its
    schema."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "config_state"]
    with store.engine.begin() as connection:
        if store.backend == "postgresql":
            # One round trip (DELETE on these small tables beats TRUNCATE's file work).
            connection.exec_driver_sql(
                "; ".join(f"DELETE FROM {name}" for name in tables)
                + "; UPDATE config_state SET version = 0; "
                + "; ".join(f"ALTER SEQUENCE IF EXISTS {name}_id_seq RESTART" for name in tables)
            )
        else:
            for name in tables:
                connection.exec_driver_sql(f"DELETE FROM {name}")
            connection.exec_driver_sql("DELETE FROM sqlite_sequence")  # ids are never reused
            connection.exec_driver_sql("UPDATE config_state SET version = 0")
    return store


@dataclass
class Admin:
    """A running admin API over a store, with a platform admin's client."""

    store: Store
    server: AdminServer
    base: str
    root_token: str
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.base, headers=headers, timeout=30)
        self._clients.append(client)
        return client

    @property
    def root(self) -> httpx.Client:
        return self.client(self.root_token)

    def user(self, name: str, roles: dict[str, str] | None = None, *, admin: bool = False) -> str:
        """Creates a user with roles in teams (by name, created when missing) and returns a
        token for it. Done in the store directly: it is set-up, not the thing under test."""
        with self.store.write(SYSTEM) as tx:
            user = users.create(tx, name, platform_role="admin" if admin else "member")
            for team_name, role in (roles or {}).items():
                team = teams.find(tx.session, team_name) or teams.create(tx, team_name)
                teams.add_member(tx, team, user, role)
            _, token = users.create_token(tx, user, "test")
        return token

    def close(self) -> None:
        for client in self._clients:
            client.close()


def start_server(store: Store) -> tuple[AdminServer, str]:
    sock = bind("127.0.0.1", 0)
    server = AdminServer(create_admin_app(store), sock=sock)
    server.start_thread()
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/admin/v1"


def fresh_admin(store: Store, server: AdminServer, base: str) -> Admin:
    """Empties the store and makes a platform admin `root` whose client `Admin.root` is."""
    reset(store)
    with store.write(SYSTEM) as tx:
        root = users.create(tx, "root", platform_role="admin")
        _, token = users.create_token(tx, root, "test")
    return Admin(store, server, base, token)


def backend_params() -> list[Any]:
    return [pytest.param(b, id=b) for b in BACKENDS]
