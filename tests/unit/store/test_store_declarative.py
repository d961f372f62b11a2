"""Export, import and apply: the store as the declarative file's shape."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import yaml

from tollway.config.load import validate_config
from tollway.store import Store, open_store
from tollway.store.apply import apply_config, is_empty
from tollway.store.errors import Invalid
from tollway.store.export import export_config

from control_plane import SECRET

FILE = """
providers:
  oa: {type: openai, credentials: {api_key: sk-file-secret}}
  local: {base_url: "http://127.0.0.1:9000/v1"}
models:
  gpt-4o:
    deployments:
      - {provider: oa, name: main, weight: 2}
      - {provider: local, model: gpt-4o-local, weight: 0, rpm: 60}
    routing: {strategy: weighted, breaker: {cooldown_s: 5}}
    fallbacks: [llama]
  llama: {deployments: [{provider: local, model: llama-3}], fallbacks: [gpt-4o]}
catalog:
  llama: {provider: vllm, context_window: 8192, input: 0}
users:
  alice: {email: a@x.io}
  bob: {}
teams:
  ml: {description: ML team, members: {alice: team_admin}}
  pay: {members: {bob: developer}}
apps:
  pay:
    bot:
      description: billing bot
      keys:
        - {name: prod, api_key_env: BOT_KEY, models: ["gpt-*"], cidrs: [10.0.0.0/8]}
        - {name: old, key_sha256: OLD_DIGEST, revoked_at: "2025-01-01T00:00:00Z"}
services:
  ml:
    chat:
      kind: ai
      route_prefix: /chat
      visibility: public
      versions:
        1: {status: deprecated, models: [llama]}
        2: {status: published, models: [gpt-4o, llama]}
        3: {models: [gpt-4o]}
    billing:
      kind: rest
      route_prefix: /billing
      versions:
        1: {status: published, upstream: {targets: [{url: "http://10.0.0.5:8080"}]}}
subscriptions:
  - {app: pay/bot, service: ml/chat, status: approved}
""".replace("OLD_DIGEST", hashlib.sha256(b"tw-old").hexdigest())

ENV = {"BOT_KEY": "tw-bot-key"}


def _config(text: str = FILE) -> Any:
    return validate_config(yaml.safe_load(text))


def test_dry_run_writes_nothing_and_apply_is_idempotent(store: Store) -> None:
    plan = apply_config(store, _config(), ENV, dry_run=True)
    assert not plan.applied and plan.version is None
    assert "+ service ml/chat" in plan.render()
    assert "+ key pay/bot/prod" in plan.render()
    assert store.current_version() == 0 and is_empty(store)
    applied = apply_config(store, _config(), ENV)
    assert applied.applied and applied.version == 1 == store.current_version()
    assert [c.line() for c in applied.changes] == [c.line() for c in plan.changes]
    again = apply_config(store, _config(), ENV)
    assert again.changes == () and again.render() == "no changes"
    assert store.current_version() == 1


def test_applied_state(store: Store) -> None:
    apply_config(store, _config(), ENV)
    models = store.load_state().models
    assert models["gpt-4o"] == _config().models["gpt-4o"]
    assert models["gpt-4o"].routing.breaker.cooldown_s == 5
    # Models of one file may fall back to one another.
    assert models["llama"].fallbacks == ["gpt-4o"]
    state = store.load_state()
    chat = next(s for s in state.services.values() if s.name == "chat")
    assert chat.published is not None and chat.published.number == 2
    assert chat.published.models == ("gpt-4o", "llama")
    key = state.keys[hashlib.sha256(b"tw-bot-key").digest()]
    assert key.models == ("gpt-*",) and key.revoked_at is None
    assert state.keys[hashlib.sha256(b"tw-old").digest()].revoked_at is not None
    bot = state.apps[key.app_id]
    assert state.subscription(bot.id, chat.id).status == "approved"  # type: ignore[union-attr]
    secret = state.providers["oa"].credentials
    assert secret is not None and secret.api_key is not None
    assert secret.api_key.get_secret_value() == "sk-file-secret"


def test_changes_show_as_a_diff(store: Store) -> None:
    apply_config(store, _config(), ENV)
    changed = (
        FILE.replace("visibility: public", "visibility: public\n      approval: auto")
        .replace("description: ML team", "description: Machine learning")
        .replace("alice: team_admin", "alice: viewer")
        .replace("3: {models: [gpt-4o]}", "3: {status: published, models: [gpt-4o]}")
        .replace("2: {status: published", "2: {status: deprecated")
    )
    plan = apply_config(store, _config(changed), ENV, dry_run=True)
    text = plan.render()
    assert "~ team ml: description: 'ML team' -> 'Machine learning'" in text
    assert "~ member ml/alice: role: 'team_admin' -> 'viewer'" in text
    assert "~ service ml/chat: approval: 'manual' -> 'auto'" in text
    assert "~ version ml/chat v3: status: 'draft' -> 'published'" in text
    assert "~ version ml/chat v2: status: 'published' -> 'deprecated'" in text
    assert store.current_version() == 1
    # A public service turned private makes another team's subscription impossible.
    private = FILE.replace("visibility: public", "visibility: private")
    with pytest.raises(Invalid, match="private to its team"):
        apply_config(store, _config(private), ENV, dry_run=True)
    apply_config(store, _config(changed), ENV)
    assert store.load_state().version == 2


def test_problems_name_their_place_and_nothing_is_written(store: Store) -> None:
    broken = FILE.replace("pay: {members: {bob: developer}}", "pay: {members: {ghost: viewer}}")
    with pytest.raises(Invalid) as info:
        apply_config(store, _config(broken), ENV)
    fields = {p.field for p in info.value.problems}
    assert fields == {"teams.pay.members.ghost"}
    assert is_empty(store)
    with pytest.raises(Invalid) as info:
        apply_config(store, _config(), {})
    assert {p.field for p in info.value.problems} == {"apps.pay.bot.keys[0].api_key_env"}
    apply_config(store, _config(), ENV)
    frozen = FILE.replace(
        "2: {status: published, models: [gpt-4o, llama]}",
        "2: {status: published, models: [gpt-4o]}",
    )
    with pytest.raises(Invalid, match="frozen"):
        apply_config(store, _config(frozen), ENV)


def test_unstated_fields_and_entities_are_left_alone(store: Store) -> None:
    apply_config(store, _config(), ENV)
    partial = """
teams:
  ml: {}
services:
  ml:
    chat: {kind: ai, route_prefix: /chat}
"""
    plan = apply_config(store, _config(partial), ENV)
    assert plan.changes == ()
    exported = export_config(store)
    assert exported["teams"]["ml"]["description"] == "ML team"
    assert exported["services"]["ml"]["chat"]["visibility"] == "public"


def test_export_round_trips_through_import(store: Store) -> None:
    apply_config(store, _config(), ENV)
    plain = export_config(store)
    assert "credentials" not in plain["providers"]["oa"]
    assert "sk-file-secret" not in yaml.safe_dump(plain)
    full = export_config(store, include_secrets=True)
    assert full["providers"]["oa"]["credentials"] == {"api_key": "sk-file-secret"}
    validate_config(full)
    other = open_store(store="sqlite://", secret_key="another-secret-key-0123456789-abcdef")
    try:
        assert is_empty(other)
        apply_config(other, validate_config(yaml.safe_load(yaml.safe_dump(full))), {})
        assert export_config(other, include_secrets=True) == full
    finally:
        other.close()


def test_warnings_for_what_is_not_stored(store: Store) -> None:
    text = "server: {port: 9999}\nkeys: [{name: k, key_sha256: '%s'}]\n" % ("0" * 64)
    plan = apply_config(store, _config(text), {}, dry_run=True)
    assert any(w.startswith("server:") for w in plan.warnings)
    assert any(w.startswith("keys:") for w in plan.warnings)


def test_secret_key_is_needed_to_read_sealed_credentials(store: Store) -> None:
    apply_config(store, _config(), ENV)
    assert store.load_state().providers["oa"].credentials is not None
    assert SECRET
