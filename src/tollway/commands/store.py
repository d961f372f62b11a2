"""`tollway migrate | export | import | apply | admin-token | secret-key`: the store, offline.

These open the store directly (`--data-dir DIR` or `--store URL`, as `tollway serve` does);
a running gateway sees what they write through the config version, as it sees the admin API's
changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tollway.settings import StoreSettings
    from tollway.store import Store

# The store and its dependencies load only when one of these commands runs (not for
# `tollway serve` or `--help`).


def _store_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the SQLite store's directory (default: $TOLLWAY_DATA_DIR, else "
        "$XDG_DATA_HOME/tollway)",
    )
    where.add_argument(
        "--store", metavar="URL", help="a database URL: postgresql://USER@HOST/DB or sqlite:///FILE"
    )


def add_parsers(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="create or upgrade the store's schema")
    _store_flags(migrate)
    migrate.set_defaults(handler=_migrate)

    export = commands.add_parser("export", help="write the store's state as a YAML config")
    _store_flags(export)
    export.add_argument(
        "--include-secrets",
        action="store_true",
        help="also write provider credentials and password hashes",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=_export)

    load = commands.add_parser("import", help="load a YAML config into an empty store")
    load.add_argument("path", metavar="FILE")
    _store_flags(load)
    load.set_defaults(handler=_import)

    apply = commands.add_parser(
        "apply", help="bring the store to what a YAML config declares (idempotent)"
    )
    apply.add_argument("path", metavar="FILE")
    apply.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    _store_flags(apply)
    apply.set_defaults(handler=_apply)

    token = commands.add_parser(
        "admin-token", help="issue a new platform-admin token (recovery; works offline)"
    )
    _store_flags(token)
    token.set_defaults(handler=_admin_token)

    secret = commands.add_parser("secret-key", help="print a new value for TOLLWAY_SECRET_KEY")
    secret.set_defaults(handler=_secret_key)


def _secret_key(_args: argparse.Namespace) -> int:
    from tollway.store.encryption import new_secret

    print(new_secret())
    return 0


def _settings(args: argparse.Namespace) -> StoreSettings:
    from tollway.settings import store_settings

    return store_settings(args.data_dir, args.store)


def open_from_settings(settings: StoreSettings) -> Store:
    """The store that `--data-dir` / `--store` (and the environment) name, migrated."""
    from tollway.store import open_store

    if settings.store_url is not None:
        return open_store(store=settings.store_url, secret_key=settings.secret_key)
    return open_store(data_dir=settings.data_dir, secret_key=settings.secret_key)


def _fail(command: str, error: Exception, source: str = "") -> int:
    from tollway.config.load import ConfigError
    from tollway.store.errors import Invalid

    if isinstance(error, Invalid):
        where = f"{source}: " if source else ""
        for problem in error.problems:
            field = f"{problem.field}: " if problem.field else ""
            print(f"{where}{field}{problem.message}", file=sys.stderr)
    elif isinstance(error, ConfigError):
        print(error, file=sys.stderr)
    else:
        print(f"tollway {command}: {error}", file=sys.stderr)
    return 2


def _migrate(args: argparse.Namespace) -> int:
    from tollway.config.load import ConfigError
    from tollway.store.errors import StoreError
    from tollway.store.migrate import head

    try:
        settings = _settings(args)
        store = open_from_settings(settings)
    except (StoreError, ConfigError) as exc:
        return _fail("migrate", exc)
    where = store.description if settings.store_url else str(settings.data_dir)
    store.close()
    print(f"{where}: schema at revision {head()}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import yaml

    from tollway.config.load import ConfigError
    from tollway.store.errors import StoreError
    from tollway.store.export import export_config

    try:
        store = open_from_settings(_settings(args))
        try:
            data = export_config(store, include_secrets=args.include_secrets)
        finally:
            store.close()
    except (StoreError, ConfigError) as exc:
        return _fail("export", exc)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if args.output:
        # Secrets may be inside: readable by the owner only.
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _apply_file(args: argparse.Namespace, *, dry_run: bool, empty_only: bool) -> int:
    from tollway.config.load import ConfigError, load_config_file
    from tollway.store.apply import apply_config, is_empty
    from tollway.store.errors import StoreError

    command = "import" if empty_only else "apply"
    try:
        config = load_config_file(args.path)
        store = open_from_settings(_settings(args))
    except (StoreError, ConfigError) as exc:
        return _fail(command, exc)
    try:
        if empty_only and not is_empty(store):
            print(
                f"tollway import: the store already holds teams, services, providers or "
                f"models; use `tollway apply {args.path}` to merge",
                file=sys.stderr,
            )
            return 2
        plan = apply_config(store, config, os.environ, dry_run=dry_run)
    except StoreError as exc:
        return _fail(command, exc, args.path)
    finally:
        store.close()
    print(plan.render())
    if plan.applied:
        print(f"applied: {len(plan.changes)} changes (config version {plan.version})")
    elif dry_run and plan.changes:
        print(f"dry run: {len(plan.changes)} changes, nothing written")
    return 0


def _import(args: argparse.Namespace) -> int:
    return _apply_file(args, dry_run=False, empty_only=True)


def _apply(args: argparse.Namespace) -> int:
    return _apply_file(args, dry_run=args.dry_run, empty_only=False)


def _admin_token(args: argparse.Namespace) -> int:
    from tollway.config.load import ConfigError
    from tollway.store import issue_admin_token
    from tollway.store.errors import StoreError

    try:
        store = open_from_settings(_settings(args))
        try:
            issued = issue_admin_token(store)
        finally:
            store.close()
    except (StoreError, ConfigError) as exc:
        return _fail("admin-token", exc)
    print(f"admin token for {issued.admin} (shown once): {issued.token}")
    return 0
