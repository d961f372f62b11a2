from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config.load import ConfigError, load_config_file, validate_config

VALID = {
    "providers": {"p": {"base_url": "http://127.0.0.1:9000/v1"}},
    "models": {"m": {"deployments": [{"provider": "p"}]}},
}


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(data, "f.yaml")
    return info.value.problems


def test_valid_config_gets_defaults() -> None:
    config = validate_config(VALID)
    assert config.server.port == 8080
    assert config.server.limits.max_body_bytes == 32 * 1024 * 1024
    assert config.server.limits.max_header_bytes == 64 * 1024
    assert config.server.limits.max_headers == 100
    assert config.server.limits.header_timeout_s == 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"servr": {}}, "servr: unknown field (did you mean 'server'?)"),
        (
            {"server": {"limits": {"max_body": 1}}},
            "server.limits.max_body: unknown field (did you mean 'max_body_bytes'?)",
        ),
        (
            {**VALID, "models": {"m": {"deployments": [{"provider": "p", "zzz": 1}]}}},
            "models.m.deployments[0].zzz: unknown field "
            "(known fields: model, name, provider, rpm, tpm, weight)",
        ),
        (
            {**VALID, "models": {"m": {"deployments": [{"provider": "p", "modle": "x"}]}}},
            "models.m.deployments[0].modle: unknown field (did you mean 'model'?)",
        ),
    ],
)
def test_unknown_fields_are_named_with_their_place(data: dict[str, object], expected: str) -> None:
    assert expected in problems(data)


def test_value_errors_name_the_field() -> None:
    found = problems(
        {"server": {"port": 70000}, "providers": {"p": {"base_url": "ftp://x"}, "q": {}}}
    )
    assert any(p.startswith("server.port: ") for p in found)
    assert "providers.p.base_url: must be an http:// or https:// URL" in found
    assert "providers.q: base_url is required for the provider type 'openai_compatible'" in found


def test_reference_to_unknown_provider() -> None:
    [problem] = problems(
        {
            "providers": {"p": {"base_url": "http://x"}},
            "models": {"m": {"deployments": [{"provider": "nope"}]}},
        }
    )
    assert "models.m.deployments[0].provider: unknown provider 'nope' (configured: p)" in problem


def test_keys_need_exactly_one_source_and_a_valid_hash() -> None:
    assert "keys[0]: give exactly one of key_sha256 and api_key_env" in problems(
        {"keys": [{"name": "a"}]}
    )
    assert any("key_sha256" in p for p in problems({"keys": [{"name": "a", "key_sha256": "xyz"}]}))
    assert (
        "duplicate key names: a"
        in problems({"keys": [{"name": "a", "key_env": "A"}, {"name": "a", "key_env": "B"}]})[0]
    )


def test_provider_headers_cannot_break_framing() -> None:
    found = problems(
        {"providers": {"p": {"base_url": "http://x", "headers": {"Content-Length": "5"}}}}
    )
    assert any("set by the gateway" in p for p in found)
    found = problems(
        {"providers": {"p": {"base_url": "http://x", "headers": {"X-A": "a\r\nX-Injected: 1"}}}}
    )
    assert any("line break" in p for p in found)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: [1\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert "line 3" in str(info.value) or "line 2" in str(info.value)
    assert str(info.value).startswith(str(path))


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "absent.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(path)


def test_key_env_is_the_older_name_of_api_key_env_and_is_flagged() -> None:
    from tollway.config.load import config_warnings

    config = validate_config({"keys": [{"name": "old", "key_env": "OLD"}]})
    assert config.keys[0].env_var == "OLD"
    assert "keys[0].key_env is deprecated: name it api_key_env, as providers do" in (
        config_warnings(config)
    )
    new = validate_config({"keys": [{"name": "new", "api_key_env": "NEW"}]})
    assert new.keys[0].env_var == "NEW"
    assert not any("deprecated" in w for w in config_warnings(new))
    assert (
        "give exactly one"
        in problems({"keys": [{"name": "both", "key_env": "A", "api_key_env": "B"}]})[0]
    )


def test_alike_deployments_get_distinct_labels_and_names_must_differ() -> None:
    base = {"providers": {"p": {"type": "openai", "base_url": "http://127.0.0.1:9"}}}
    alike = validate_config(
        {
            **base,
            "models": {
                "m": {
                    "deployments": [
                        {"provider": "p", "model": "x"},
                        {"provider": "p", "model": "x", "weight": 3},
                        {"provider": "p", "model": "x", "name": "p/x#2"},
                    ]
                }
            },
        }
    )
    assert alike.models["m"].labels() == ["p/x", "p/x#3", "p/x#2"]
    with pytest.raises(ConfigError, match="deployment names must differ: a"):
        validate_config(
            {
                **base,
                "models": {
                    "m": {
                        "deployments": [
                            {"provider": "p", "name": "a"},
                            {"provider": "p", "name": "a"},
                        ]
                    }
                },
            }
        )
