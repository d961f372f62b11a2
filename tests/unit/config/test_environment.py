"""${NAME} references in config files, read from the environment when the file is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config.environment import expand
from tollway.config.load import ConfigError, load_config_file

FILE = """
providers:
  up: {base_url: "${BENCH_UPSTREAM}", headers: {x-region: "${REGION:-eu}", x-note: "$$5 a $x"}}
models:
  m: {deployments: [{provider: up}]}
"""


def test_references_are_replaced_when_the_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(FILE)
    monkeypatch.setenv("BENCH_UPSTREAM", "http://127.0.0.1:9000/v1")
    monkeypatch.delenv("REGION", raising=False)
    provider = load_config_file(path).providers["up"]
    assert provider.base_url == "http://127.0.0.1:9000/v1"
    # A default when unset; `$$` is a `$`; a `$` not followed by `{` stays as it is.
    assert provider.headers == {"x-region": "eu", "x-note": "$5 a $x"}
    monkeypatch.setenv("REGION", "us")
    assert load_config_file(path).providers["up"].headers["x-region"] == "us"


def test_an_unset_variable_without_a_default_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(FILE)
    monkeypatch.delenv("BENCH_UPSTREAM", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert info.value.problems == [
        "providers.up.base_url: the environment variable BENCH_UPSTREAM is not set "
        "(give it a value, or a default: ${BENCH_UPSTREAM:-...})"
    ]


def test_malformed_references_are_errors_and_other_values_untouched() -> None:
    problems: list[str] = []
    data = {"a": ["${1BAD}", "${OPEN", 3, None], "b": {"c": "plain"}}
    out = expand(data, {}, problems)
    assert out == data
    assert [p.split(":")[0] for p in problems] == ["a[0]", "a[1]"]
    assert all("is not a variable reference" in p for p in problems)


def test_several_references_in_one_value() -> None:
    problems: list[str] = []
    out = expand("http://${H}:${P:-80}/v1", {"H": "10.0.0.1"}, problems)
    assert (out, problems) == ("http://10.0.0.1:80/v1", [])
