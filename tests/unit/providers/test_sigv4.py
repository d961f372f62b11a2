"""SigV4 against AWS's published test vectors and against botocore's signer."""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tollway.providers.sigv4 import SigV4Signer

VECTOR_SIGNER = SigV4Signer(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service"
)
VECTOR_HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        # aws-sig-v4-test-suite: get-vanilla and post-vanilla
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_published_vectors(method: str, signature: str) -> None:
    auth = VECTOR_SIGNER.authorization(method, "/", "", VECTOR_HEADERS, b"")
    assert auth == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
        f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_published_vector_canonical_request() -> None:
    canonical, signed = VECTOR_SIGNER.canonical_request("GET", "/", "", VECTOR_HEADERS, b"")
    assert canonical == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signed == "host;x-amz-date"


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLETOKEN"])
def test_matches_botocore_on_a_converse_request(token: str | None) -> None:
    host = "bedrock-runtime.us-west-2.amazonaws.com"
    path = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    when = datetime.datetime(2026, 11, 23, 4, 5, 6)
    ours = SigV4Signer("AKIDEXAMPLE", "secret/key+example", "us-west-2", "bedrock", token)
    headers = dict(
        (k.decode(), v.decode())
        for k, v in ours.headers_for(
            "POST", host, path, body, now=when.replace(tzinfo=datetime.UTC).timestamp()
        )
    )
    request = AWSRequest(method="POST", url=f"https://{host}{path}", data=body)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(
            Credentials("AKIDEXAMPLE", "secret/key+example", token), "bedrock", "us-west-2"
        ).add_auth(request)
    assert headers["authorization"] == request.headers["Authorization"]
    assert headers["x-amz-date"] == request.headers["X-Amz-Date"]
    if token:
        assert headers["x-amz-security-token"] == token
