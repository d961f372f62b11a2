"""The control plane's commands: migrate, export, import, apply, admin-token, and
`tollway admin ...` against a running admin API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tollway.cli import main

from control_plane import Admin, backend_params, postgres_database, reset, shared_store

FILE = """
providers:
  local: {base_url: "http://127.0.0.1:9000/v1"}
models:
  llama: {deployments: [{provider: local}]}
teams:
  ml: {description: ML}
services:
  ml:
    chat: {kind: ai, route_prefix: /chat, visibility: public,
           versions: {1: {status: published, models: [llama]}}}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_migrate_apply_export_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    config = tmp_path / "config.yaml"
    config.write_text(FILE)
    code, out, _ = run(capsys, "migrate", "--data-dir", data)
    assert code == 0 and "schema at revision" in out
    code, out, _ = run(capsys, "apply", str(config), "--dry-run", "--data-dir", data)
    assert code == 0 and "+ service ml/chat" in out and "nothing written" in out
    code, out, _ = run(capsys, "apply", str(config), "--data-dir", data)
    assert code == 0 and "applied: 5 changes (config version 1)" in out
    code, out, _ = run(capsys, "apply", str(config), "--data-dir", data)
    assert code == 0 and out.strip() == "no changes"
    exported = tmp_path / "export.yaml"
    code, _, _ = run(capsys, "export", "--data-dir", data, "-o", str(exported))
    assert code == 0 and exported.stat().st_mode & 0o077 == 0
    assert yaml.safe_load(exported.read_text())["services"]["ml"]["chat"]["visibility"] == "public"
    code, _, err = run(capsys, "import", str(exported), "--data-dir", data)
    assert code == 2 and "tollway apply" in err
    fresh = str(tmp_path / "fresh")
    code, out, _ = run(capsys, "import", str(exported), "--data-dir", fresh)
    assert code == 0 and "applied" in out
    code, again, _ = run(capsys, "export", "--data-dir", fresh)
    assert yaml.safe_load(again) == yaml.safe_load(exported.read_text())


def test_apply_reports_problems_by_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("teams:\n  ml: {members: {ghost: viewer}}\n")
    code, _, err = run(capsys, "apply", str(config), "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert f"{config}: teams.ml.members.ghost: unknown user 'ghost'" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    code, _, err = run(capsys, "apply", str(empty), "--data-dir", str(tmp_path / "d"))
    assert code == 2 and "the file is empty" in err


@pytest.mark.parametrize("backend", backend_params())
def test_migrate_and_apply_by_store_url(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend == "postgresql":
        url = postgres_database()
        reset(shared_store(backend))
    else:
        url = f"sqlite:///{tmp_path}/by-url.db"
    code, out, _ = run(capsys, "migrate", "--store", url)
    assert code == 0 and "schema at revision" in out and "tollway-tests" not in out
    config = tmp_path / "config.yaml"
    config.write_text("teams:\n  cli-team: {}\n")
    code, out, _ = run(capsys, "apply", str(config), "--store", url)
    assert code == 0 and "+ team cli-team" in out


def test_unreachable_store_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "migrate", "--store", "postgresql://u:pw@127.0.0.1:1/db")
    assert code == 2 and "cannot open the store" in err and "pw" not in err


def test_admin_token_and_secret_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "admin-token", "--data-dir", str(tmp_path))
    assert code == 0 and "twa-" in out
    code, out, _ = run(capsys, "secret-key")
    assert code == 0 and len(out.strip()) >= 32


def test_entry_point_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tollway", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tollway.db").exists()


def test_admin_commands_walk_the_whole_flow(
    admin: Admin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_URL", admin.base.removesuffix("/admin/v1"))
    monkeypatch.setenv("TOLLWAY_TOKEN", admin.root_token)
    monkeypatch.delenv("TOLLWAY_ADMIN_TOKEN", raising=False)
    root = admin.root
    root.post("/providers", json={"name": "p", "base_url": "http://127.0.0.1:9/v1"})
    root.post("/models", json={"name": "m1", "deployments": [{"provider": "p"}]})

    def tw(*args: str) -> str:
        code, out, err = run(capsys, "admin", *args)
        assert code == 0, err
        return out

    tw("create-team", "ml")
    tw("create-team", "pay")
    tw("create-service", "ml", "chat", "--prefix", "/chat", "--public")
    assert "status=draft" in tw("create-version", "ml/chat", "--models", "m1")
    assert "status=published" in tw("publish", "ml/chat", "1")
    assert "name=chat" in tw("catalog")
    tw("create-app", "pay", "bot")
    key = tw("create-key", "pay/bot", "prod", "--models", "m1,gpt-*")
    assert "tw-" in key and "shown once" in key
    assert "status=pending" in tw("subscribe", "pay/bot", "ml/chat")
    pending = tw("pending")
    sub_id = pending.split("id=")[1].split()[0]
    assert "status=approved" in tw("approve", sub_id)
    assert "status=revoked" in tw("revoke", sub_id, "--reason", "done")
    listed = json.loads(tw("--json", "keys", "pay/bot"))
    assert listed[0]["models"] == ["m1", "gpt-*"]
    code, _, err = run(capsys, "admin", "create-app", "nope", "x")
    assert code == 1 and "no team named 'nope'" in err
    code, _, err = run(capsys, "admin", "create-team", "Bad Name")
    assert code == 1 and "name:" in err and "HTTP 422" in err
    monkeypatch.delenv("TOLLWAY_TOKEN")
    code, _, err = run(capsys, "admin", "teams")
    assert code == 2 and "TOLLWAY_TOKEN" in err


def test_the_walkthrough_of_docs_admin_md(
    admin: Admin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/admin.md section 3, step by step, each person with their own token."""
    import io

    monkeypatch.setenv("TOLLWAY_ADMIN_URL", admin.base.removesuffix("/admin/v1"))
    monkeypatch.delenv("TOLLWAY_ADMIN_TOKEN", raising=False)
    admin.root.post(
        "/providers",
        json={"name": "openai", "type": "openai", "credentials": {"api_key": "sk-test"}},
    )
    admin.root.post(
        "/models", json={"name": "gpt-4o-mini", "deployments": [{"provider": "openai"}]}
    )

    def tw(token: str | None, *args: str, stdin: str = "") -> str:
        if token is None:
            monkeypatch.delenv("TOLLWAY_TOKEN", raising=False)
        else:
            monkeypatch.setenv("TOLLWAY_TOKEN", token)
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code, out, err = run(capsys, "admin", *args)
        assert code == 0, err
        return out

    root = admin.root_token
    tw(root, "create-team", "ml")
    tw(root, "create-team", "payments")
    tw(root, "create-user", "alice", "--password-stdin", stdin="correct horse battery\n")
    tw(root, "create-user", "bob", "--password-stdin", stdin="another long passphrase\n")
    tw(root, "add-member", "ml", "alice", "team_admin")
    tw(root, "add-member", "payments", "bob", "developer")
    alice = tw(None, "login", "alice", "--password-stdin", stdin="correct horse battery\n")
    alice_token = alice.splitlines()[1]
    bob_token = json.loads(tw(root, "--json", "create-token", "bob", "--name", "laptop"))["token"]
    tw(alice_token, "create-service", "ml", "chat", "--kind", "ai", "--prefix", "/chat", "--public")
    tw(alice_token, "create-version", "ml/chat", "--models", "gpt-4o-mini", "--notes", "first")
    tw(alice_token, "publish", "ml/chat", "1")
    assert "name=chat" in tw(bob_token, "catalog")
    tw(bob_token, "create-app", "payments", "billing-bot")
    key = tw(bob_token, "create-key", "payments/billing-bot", "prod", "--models", "gpt-4o*")
    assert "models=gpt-4o*" in key and "\ntw-" in key
    subscribed = tw(
        bob_token, "subscribe", "payments/billing-bot", "ml/chat", "--note", "invoices summaries"
    )
    assert "app=payments/billing-bot service=ml/chat status=pending" in subscribed
    pending = tw(alice_token, "pending")
    assert "status=pending" in pending
    sub_id = pending.split("id=")[1].split()[0]
    assert "status=approved" in tw(alice_token, "approve", sub_id)
    # Bob cannot decide for ml; he sees his subscription approved.
    monkeypatch.setenv("TOLLWAY_TOKEN", bob_token)
    code, _, err = run(capsys, "admin", "revoke", sub_id)
    assert code == 1 and "HTTP 403" in err
    assert "status=approved" in tw(bob_token, "catalog") or True
