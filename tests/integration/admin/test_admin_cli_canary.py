"""`tollway admin canary`: a rest service's second version serving a share of the calls."""

from __future__ import annotations

import pytest

from tollway.cli import main

from control_plane import Admin


def test_canary_from_the_command_line(
    admin: Admin, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_URL", admin.base.removesuffix("/admin/v1"))
    monkeypatch.setenv("TOLLWAY_TOKEN", admin.root_token)
    monkeypatch.delenv("TOLLWAY_ADMIN_TOKEN", raising=False)

    def tw(*args: str) -> str:
        code = main(["admin", *args])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out

    tw("create-team", "ops")
    tw("create-service", "ops", "api", "--kind", "rest", "--prefix", "/api")
    tw("create-version", "ops/api", "--upstream", "http://blue:8080")
    tw("create-version", "ops/api", "--upstream", "http://green:8080")
    tw("publish", "ops/api", "1")
    out = tw("canary", "ops/api", "2", "--weight", "10")
    assert "status=canary" in out and "weight=10" in out
    assert "weight=40" in tw("canary", "ops/api", "2", "--weight", "40")
    assert "status=published" in tw("publish", "ops/api", "2")
