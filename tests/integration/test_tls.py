"""Upstreams over HTTPS: verified against a private CA (`ca_file`), refused when untrusted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tollway.testing import mock_openai as wire

from gateways import CLIENT_KEY, UPSTREAM_KEY, keyed_gateway
from servers import Process, free_port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for this run."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_mock(workdir: Path, certificate: tuple[Path, Path]) -> Iterator[Process]:
    port = free_port()
    process = Process(
        [
            "mock-provider",
            "--port",
            str(port),
            "--api-key",
            UPSTREAM_KEY,
            "--tls-cert",
            str(certificate[0]),
            "--tls-key",
            str(certificate[1]),
        ],
        port,
        workdir / f"tls-mock-{port}.log",
    ).wait_listening()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def gateway(workdir: Path, tls_mock: Process, certificate: tuple[Path, Path]) -> Iterator[Process]:
    base = f"https://127.0.0.1:{tls_mock.port}/v1"
    process = keyed_gateway(
        workdir,
        {
            "trusted": {
                "base_url": base,
                "api_key_env": "MOCK_KEY",
                "ca_file": str(certificate[0]),
            },
            "untrusted": {"base_url": base, "api_key_env": "MOCK_KEY"},
        },
        {"secure": ("trusted", "gpt-4o"), "insecure": ("untrusted", "gpt-4o")},
    )
    yield process
    process.stop()


def test_https_upstream_with_a_private_ca(gateway: Process) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    expected = " ".join(wire.reply_words("hi", 50))
    reply = client.chat.completions.create(
        model="secure", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == expected
    stream = client.chat.completions.create(
        model="secure", stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


def test_untrusted_certificate_is_refused(gateway: Process) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="insecure", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 502
    assert info.value.code == "upstream_connect"
    assert "certificate" in info.value.message


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    from tollway.config.compile import compile_config
    from tollway.config.load import ConfigError, validate_config

    with pytest.raises(ConfigError, match="ca_file: cannot load"):
        compile_config(
            validate_config(
                {
                    "providers": {
                        "p": {"base_url": "https://x", "ca_file": str(tmp_path / "missing.pem")}
                    }
                }
            ),
            {},
        )
