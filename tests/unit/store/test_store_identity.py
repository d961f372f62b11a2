"""Users, tokens, bootstrap, keys and sealed credentials in the store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tollway.config.models import ProviderConfig
from tollway.store import (
    SYSTEM,
    Actor,
    Store,
    apps,
    bootstrap_admin,
    credentials,
    issue_admin_token,
    keys,
    providers,
    teams,
    users,
)
from tollway.store.encryption import SecretBox
from tollway.store.errors import Conflict, Invalid, SecretKeyError
from tollway.store.schema import AuditEntry, User, utcnow

from control_plane import SECRET


def test_passwords_are_argon2_and_login_gives_an_expiring_token(store: Store) -> None:
    with store.write(SYSTEM) as tx:
        user = users.create(tx, "ann", password="correct horse")
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    with store.write(SYSTEM) as tx:
        assert users.login(tx, "ann", "wrong") is None
        assert users.login(tx, "nobody", "x") is None
        found = users.login(tx, "ann", "correct horse")
    assert found is not None
    _, token, secret = found
    assert secret.startswith("twa-") and token.expires_at is not None
    assert token.expires_at - utcnow() <= timedelta(hours=12)
    with store.read() as session:
        authenticated = users.authenticate(session, secret)
        assert authenticated is not None and authenticated.user.name == "ann"
        # Only the digest is kept.
        assert (
            session.execute(
                text("SELECT count(*) FROM user_tokens WHERE digest = :d"),
                {"d": credentials.digest(secret)},
            ).scalar()
            == 1
        )


def test_revoked_expired_and_disabled_tokens_do_not_authenticate(store: Store) -> None:
    with store.write(SYSTEM) as tx:
        user = users.create(tx, "bob")
        _live, live_secret = users.create_token(tx, user, "live")
        revoked, revoked_secret = users.create_token(tx, user, "revoked")
        users.revoke_token(tx, user, revoked)
        short, short_secret = users.create_token(
            tx, user, "short", expires_at=utcnow() + timedelta(seconds=30)
        )
        short.expires_at = utcnow() - timedelta(seconds=1)
    with store.read() as session:
        assert users.authenticate(session, live_secret) is not None
        assert users.authenticate(session, revoked_secret) is None
        assert users.authenticate(session, short_secret) is None
        assert users.authenticate(session, "twa-unknown") is None
    with store.write(SYSTEM) as tx:
        users.update(tx, users.get(tx.session, user.id), disabled=True)
    with store.read() as session:
        assert users.authenticate(session, live_secret) is None
    with pytest.raises(Invalid), store.write(SYSTEM) as tx:
        users.create_token(tx, user, "past", expires_at=utcnow() - timedelta(days=1))


def test_the_last_platform_admin_stays(store: Store) -> None:
    with store.write(SYSTEM) as tx:
        first = users.create(tx, "first", platform_role="admin")
    for change in ({"platform_role": "member"}, {"disabled": True}):
        with (
            pytest.raises(Conflict, match="last enabled platform admin"),
            store.write(SYSTEM) as tx,
        ):
            users.update(tx, users.get(tx.session, first.id), **change)  # type: ignore[arg-type]
    with pytest.raises(Conflict), store.write(SYSTEM) as tx:
        users.delete(tx, users.get(tx.session, first.id))
    with store.write(SYSTEM) as tx:
        users.create(tx, "second", platform_role="admin")
        users.update(tx, users.get(tx.session, first.id), platform_role="member")


def test_bootstrap_generates_one_token_once(store: Store) -> None:
    first = bootstrap_admin(store, env_token=None)
    assert first.source == "generated" and first.token and first.token.startswith("twa-")
    again = bootstrap_admin(store, env_token=None)
    assert again.token is None and again.source == "existing"
    with store.read() as session:
        assert users.authenticate(session, first.token) is not None
    recovery = issue_admin_token(store)
    assert recovery.token and recovery.token != first.token


def test_bootstrap_from_the_environment(store: Store) -> None:
    with pytest.raises(Invalid):
        bootstrap_admin(store, env_token="short")
    result = bootstrap_admin(store, env_token="env-token-0123456789")
    assert result.source == "env" and result.token is None
    version = store.current_version()
    # Starting again with the same token changes nothing.
    bootstrap_admin(store, env_token="env-token-0123456789")
    assert store.current_version() == version
    # A new token replaces the old one.
    bootstrap_admin(store, env_token="env-token-abcdefghij")
    with store.read() as session:
        assert users.authenticate(session, "env-token-0123456789") is None
        found = users.authenticate(session, "env-token-abcdefghij")
        assert found is not None and found.user.platform_role == "admin"
        assert session.scalar(select(User.name)) == "admin"


def test_keys_are_generated_shown_once_and_stored_as_digest(store: Store) -> None:
    with store.write(SYSTEM) as tx:
        team = teams.create(tx, "t")
        app = apps.create(tx, team, "bot")
        key, secret = keys.create(tx, app, "prod", models=["gpt-*"], cidrs=["10.1.2.3/8"])
    assert secret.startswith("tw-") and len(secret) == 43
    assert key.digest == credentials.digest(secret)
    assert key.prefix == secret[:9]
    with store.read() as session:
        stored = session.execute(text("SELECT * FROM api_keys")).mappings().one()
        assert secret not in str(dict(stored))
    state = store.load_state()
    found = state.keys[bytes.fromhex(key.digest)]
    assert found.models == ("gpt-*",) and found.app_id == app.id and found.team_id == team.id
    assert [str(n) for n in found.cidrs or ()] == ["10.0.0.0/8"]


def test_rotation_keeps_the_old_key_for_the_overlap(store: Store) -> None:
    with store.write(SYSTEM) as tx:
        app = apps.create(tx, teams.create(tx, "t"), "bot")
        old, _ = keys.create(tx, app, "prod", models=["a"])
    with store.write(SYSTEM) as tx:
        new, _secret = keys.rotate(
            tx, app, keys.get(tx.session, app.id, old.id), overlap=timedelta(hours=1)
        )
    assert new.allowed_models == ["a"] and new.rotated_from_id == old.id
    state = store.load_state()
    old_state = state.keys[bytes.fromhex(old.digest)]
    assert old_state.expires_at is not None
    assert timedelta(minutes=59) < old_state.expires_at - utcnow() <= timedelta(hours=1)
    assert old_state.usable_at(utcnow()) and not old_state.usable_at(utcnow() + timedelta(hours=2))
    with store.write(SYSTEM) as tx:
        newer, _ = keys.rotate(tx, app, keys.get(tx.session, app.id, new.id), overlap=timedelta(0))
    state = store.load_state()
    assert state.keys[bytes.fromhex(new.digest)].revoked_at is not None
    with pytest.raises(Conflict, match="revoked or expired"), store.write(SYSTEM) as tx:
        keys.rotate(tx, app, keys.get(tx.session, app.id, new.id), overlap=timedelta(0))
    assert newer.revoked_at is None


def test_registering_a_known_digest_is_a_conflict(store: Store) -> None:
    digest = credentials.digest("tw-from-elsewhere")
    with store.write(SYSTEM) as tx:
        app = apps.create(tx, teams.create(tx, "t"), "bot")
        keys.register(tx, app, "a", digest=digest)
    with pytest.raises(Conflict), store.write(SYSTEM) as tx:
        keys.register(tx, app, "b", digest=digest)


def test_provider_credentials_are_sealed_and_never_logged(store: Store) -> None:
    config = ProviderConfig.model_validate(
        {"type": "openai", "credentials": {"api_key": "sk-very-secret"}}
    )
    with store.write(Actor("ann", None)) as tx:
        providers.create(tx, "oa", config)
    with store.read() as session:
        dumped = str([dict(r) for r in session.execute(text("SELECT * FROM providers")).mappings()])
        audit = str([e.changes for e in session.scalars(select(AuditEntry))])
    assert "sk-very-secret" not in dumped and "v1." in dumped
    assert "sk-very-secret" not in audit and "api_key" in audit
    state = store.load_state()
    secret = state.providers["oa"].credentials
    assert secret is not None and secret.api_key is not None
    assert secret.api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(state)


def test_credentials_kept_or_replaced_on_update(store: Store) -> None:
    with store.write(SYSTEM) as tx:
        provider = providers.create(
            tx,
            "oa",
            ProviderConfig.model_validate({"type": "openai", "credentials": {"api_key": "k1"}}),
        )
    with store.write(SYSTEM) as tx:
        providers.replace(
            tx,
            providers.get(tx.session, provider.id),
            ProviderConfig.model_validate({"type": "openai", "max_idle_connections": 3}),
            keep_credentials=True,
        )
    kept = store.load_state().providers["oa"]
    assert kept.max_idle_connections == 3
    assert kept.credentials and kept.credentials.api_key
    assert kept.credentials.api_key.get_secret_value() == "k1"
    # Keeping an api_key while the new settings name api_key_env is a contradiction.
    with pytest.raises(Invalid, match="api_key"), store.write(SYSTEM) as tx:
        providers.replace(
            tx,
            providers.get(tx.session, provider.id),
            ProviderConfig.model_validate({"type": "openai", "api_key_env": "OPENAI_KEY"}),
            keep_credentials=True,
        )
    with store.write(SYSTEM) as tx:
        providers.replace(
            tx,
            providers.get(tx.session, provider.id),
            ProviderConfig.model_validate({"type": "openai", "api_key_env": "OPENAI_KEY"}),
            keep_credentials=False,
        )
    replaced = store.load_state().providers["oa"]
    assert replaced.credentials is None and replaced.api_key_env == "OPENAI_KEY"


def test_a_wrong_secret_key_is_named() -> None:
    sealed = SecretBox(SECRET).seal({"api_key": "x"})
    with pytest.raises(SecretKeyError, match="another secret key"):
        SecretBox("another-secret-0123456789-abcdefghijkl").open(sealed)
    with pytest.raises(SecretKeyError, match="at least 32"):
        SecretBox("short")
    assert SecretBox(SECRET).open(sealed) == {"api_key": "x"}


def test_without_a_secret_key_credentials_cannot_be_stored(backend: str) -> None:
    if backend != "sqlite":
        return
    store = Store.__new__(Store)
    store._box = None  # type: ignore[attr-defined]
    with pytest.raises(SecretKeyError, match="TOLLWAY_SECRET_KEY"):
        store.seal({"api_key": "x"})
