"""A canary declared in a file: applied beside the published version, its weight changed by
applying again, exported as it was declared."""

from __future__ import annotations

import pytest
import yaml

from tollway.config.load import validate_config
from tollway.store import Store
from tollway.store.apply import apply_config
from tollway.store.export import export_config

FILE = """
teams:
  ops: {}
services:
  ops:
    billing:
      kind: rest
      route_prefix: /billing
      versions:
        1: {status: published, upstream: {targets: [{url: "http://blue:8080"}]}}
        2:
          status: canary
          weight: WEIGHT
          upstream: {targets: [{url: "http://green:8080"}], strategy: least_connections}
"""


def _apply(store: Store, weight: int) -> list[str]:
    config = validate_config(yaml.safe_load(FILE.replace("WEIGHT", str(weight))))
    return [f"{c.action} {c.kind} {c.name}" for c in apply_config(store, config, {}).changes]


def test_a_declared_canary(store: Store) -> None:
    _apply(store, 20)
    service = next(iter(store.load_state().services.values()))
    assert service.published is not None and service.published.number == 1
    assert service.canary is not None and service.canary.number == 2
    assert service.canary_weight == 20
    assert service.canary.upstream is not None
    assert service.canary.upstream.strategy == "least_connections"
    assert _apply(store, 20) == []
    assert _apply(store, 60) == ["update version ops/billing v2"]
    assert next(iter(store.load_state().services.values())).canary_weight == 60
    exported = export_config(store)["services"]["ops"]["billing"]["versions"]
    assert exported[2]["status"] == "canary" and exported[2]["weight"] == 60


def test_a_canary_file_is_checked() -> None:
    data = yaml.safe_load(FILE.replace("WEIGHT", "20"))
    data["services"]["ops"]["billing"]["versions"][3] = {
        "status": "canary",
        "upstream": {"targets": [{"url": "http://teal:8080"}]},
    }
    with pytest.raises(Exception, match="only one version may be the canary"):
        validate_config(data)
    data = yaml.safe_load(FILE.replace("WEIGHT", "20"))
    data["services"]["ops"]["billing"]["versions"][1]["weight"] = 5
    with pytest.raises(Exception, match="`weight` is for a version with status canary"):
        validate_config(data)
