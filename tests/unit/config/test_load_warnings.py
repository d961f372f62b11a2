"""What a file gets told at load time: an empty file is an error; a provider that needs a key
and has none, or a file without models, is a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tollway.cli import main
from tollway.config.load import ConfigError, config_warnings, load_config_file, validate_config


@pytest.mark.parametrize("text", ["", "\n", "# nothing yet\n"])
def test_an_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert "the file is empty" in str(info.value)


def test_check_config_on_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert main(["check-config", str(path)]) == 2
    assert "the file is empty" in capsys.readouterr().err


def _warnings(providers: dict[str, object]) -> list[str]:
    return config_warnings(
        validate_config(
            {"providers": providers, "models": {"m": {"deployments": [{"provider": "p"}]}}}
        )
    )


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "groq", "cohere"])
def test_hosted_providers_without_a_key_are_warned_about(kind: str) -> None:
    (warning,) = _warnings({"p": {"type": kind}})
    assert warning.startswith(f"providers.p: a provider of type {kind!r} needs a key")
    assert "api_key_env" in warning


@pytest.mark.parametrize(
    "provider",
    [
        {"type": "openai", "api_key_env": "OPENAI_API_KEY"},
        {"type": "openai", "credentials": {"api_key": "sk-x"}},
        {"type": "openai", "headers": {"Authorization": "Bearer x"}},
        {"type": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1"},
        {"type": "vllm", "base_url": "http://127.0.0.1:8000/v1"},
        {
            "type": "bedrock",
            "region": "us-east-1",
            "aws_access_key_id_env": "A",
            "aws_secret_access_key_env": "B",
        },
    ],
)
def test_providers_with_a_key_or_without_need_are_not(provider: dict[str, object]) -> None:
    assert _warnings({"p": provider}) == []


def test_warnings_are_logged_at_load_and_printed_by_check_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  o: {type: openai}\nmodels:\n  m: {deployments: [{provider: o}]}\n"
    )
    with caplog.at_level(logging.WARNING, logger="tollway.config"):
        load_config_file(path)
    assert "needs a key" in caplog.text
    assert main(["check-config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{path}: warning: providers.o: a provider of type 'openai' needs a key" in err


def test_a_file_without_models_is_warned_about() -> None:
    assert config_warnings(validate_config({"server": {"port": 9000}})) == [
        "no models are declared: every model call will be answered 404"
    ]


def test_credentials_exclude_their_environment_variables() -> None:
    with pytest.raises(ConfigError, match=r"either credentials\.api_key or api_key_env"):
        validate_config(
            {
                "providers": {
                    "p": {"type": "openai", "api_key_env": "K", "credentials": {"api_key": "v"}}
                }
            }
        )
    with pytest.raises(ConfigError, match="bedrock providers only"):
        validate_config(
            {"providers": {"p": {"type": "openai", "credentials": {"aws_access_key_id": "a"}}}}
        )
