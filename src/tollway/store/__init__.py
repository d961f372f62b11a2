"""The control plane's store: SQLite (embedded, WAL) or PostgreSQL, one schema, migrated on
open. Entry points: `open_store`, `Store.load_state`, `Store.current_version`,
`bootstrap_admin`. Each entity has its module (teams, users, apps, keys, providers,
llm_models, services, versions, subscriptions); every change runs in `Store.write`."""

from tollway.store.bootstrap import Bootstrap, bootstrap_admin, issue_admin_token
from tollway.store.database import NOTIFY_CHANNEL, SYSTEM, Actor, Store, Tx, open_store
from tollway.store.state import ControlPlaneState

__all__ = [
    "NOTIFY_CHANNEL",
    "SYSTEM",
    "Actor",
    "Bootstrap",
    "ControlPlaneState",
    "Store",
    "Tx",
    "bootstrap_admin",
    "issue_admin_token",
    "open_store",
]
