"""An MCP server's bearer token in the store: sealed with the store's secret key (never kept in
the clear), opened for the data plane, left out of a plain export and given back opened with
the secrets; a file that applies the same token again changes nothing; a sealed token is the
store's own, never taken from a file. An app's MCP tool lists round-trip too."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy import select

from tollway.config.load import validate_config
from tollway.store import Store, open_store
from tollway.store.apply import apply_config
from tollway.store.errors import Invalid
from tollway.store.export import export_config
from tollway.store.schema import ServiceVersion

TOKEN = "mcp-server-token-in-a-file-0123456789"
FILE = f"""
teams: {{tools: {{}}, apps: {{}}}}
apps:
  apps:
    agent:
      tools: {{allow: ["docs.*"], deny: ["docs.admin_*"]}}
services:
  tools:
    docs:
      kind: mcp
      route_prefix: /tools/docs
      versions:
        1:
          status: published
          mcp: {{url: "http://10.0.0.9:8000/mcp", bearer_token: "{TOKEN}"}}
"""


def _config(text: str = FILE) -> Any:
    return validate_config(yaml.safe_load(text))


def test_the_token_is_sealed_and_opened_only_for_the_data_plane(store: Store) -> None:
    apply_config(store, _config(), {})
    with store.read() as session:
        raw = session.scalars(select(ServiceVersion)).one().spec
    assert TOKEN not in str(raw) and raw["mcp"]["sealed_token"]
    state = store.load_state()
    docs = next(s for s in state.services.values() if s.name == "docs")
    assert docs.published is not None and docs.published.mcp is not None
    assert docs.published.mcp.bearer_token == TOKEN
    agent = next(a for a in state.apps.values() if a.name == "agent")
    assert (agent.tools_allow, agent.tools_deny) == (("docs.*",), ("docs.admin_*",))
    assert apply_config(store, _config(), {}).changes == ()


def test_export_leaves_the_token_out_or_gives_it_opened(store: Store) -> None:
    apply_config(store, _config(), {})
    plain = export_config(store)
    assert TOKEN not in yaml.safe_dump(plain)
    mcp = plain["services"]["tools"]["docs"]["versions"][1]["mcp"]
    assert "sealed_token" not in mcp and "bearer_token" not in mcp
    assert plain["apps"]["apps"]["agent"]["tools"] == {
        "allow": ["docs.*"],
        "deny": ["docs.admin_*"],
    }
    full = export_config(store, include_secrets=True)
    assert full["services"]["tools"]["docs"]["versions"][1]["mcp"]["bearer_token"] == TOKEN
    other = open_store(store="sqlite://", secret_key="another-secret-key-0123456789-abcdef")
    try:
        apply_config(other, validate_config(yaml.safe_load(yaml.safe_dump(full))), {})
        assert export_config(other, include_secrets=True) == full
    finally:
        other.close()


def test_a_sealed_token_is_never_taken_from_a_file(store: Store) -> None:
    forged = FILE.replace(f'bearer_token: "{TOKEN}"', 'sealed_token: "v1.x.forged"')
    with pytest.raises(Invalid, match="set by the gateway"):
        apply_config(store, _config(forged), {})
