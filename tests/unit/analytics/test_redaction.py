"""Recorded bodies never carry a secret: the call's own, or one that looks like one."""

from __future__ import annotations

import re

from test_sink import call

from tollway.analytics.redaction import MASK, BodyCapture, Redactor

PROVIDER_KEY = "sk-proj-PLANTEDproviderKEY0123456789"
CLIENT_KEY = "tw-secret-client-key-0123456789"


def test_known_and_pattern_secrets_are_masked() -> None:
    body = (
        '{"messages":[{"role":"user","content":"my key is '
        + PROVIDER_KEY
        + " and Authorization: Bearer abcdefghijklmnop, also "
        + CLIENT_KEY
        + '"}],"api_key":"hunter2hunter2","aws":"AKIAABCDEFGHIJKLMNOP"}'
    )
    text = Redactor().redact(body, [CLIENT_KEY])
    for secret in (PROVIDER_KEY, CLIENT_KEY, "abcdefghijklmnop", "hunter2hunter2", "AKIAABCDEF"):
        assert secret not in text
    assert text.count(MASK) >= 5
    assert '"role":"user"' in text


def test_bodies_are_cut_and_use_the_services_patterns() -> None:
    ctx = call(response_body=b'{"choices":[{"message":{"content":"order 12345-XYZ shipped"}}]}')
    ctx.request.body = (
        b'{"messages":[{"content":"ticket INV-0042 for ' + CLIENT_KEY.encode() + b'"}]}'
    )
    capture = BodyCapture(
        max_bytes=4096, patterns=(re.compile(r"INV-\d+"), re.compile(r"\d{5}-XYZ"))
    )
    request, response = Redactor().bodies(ctx, capture)
    assert "INV-0042" not in request and CLIENT_KEY not in request
    assert response is not None and "12345-XYZ" not in response and "shipped" in response
    short = BodyCapture(max_bytes=10)
    assert len(Redactor().bodies(ctx, short)[0]) <= 10


def test_a_secret_split_over_stream_events_is_redacted_whole() -> None:
    events = b"".join(
        b'data: {"choices":[{"delta":{"content":"%s"}}]}\n\n' % word
        for word in (b"Authorization:", b" Bearer", b" abcdefghij", b"klmnop", b" thanks")
    )
    ctx = call(response_body=bytearray(events + b"data: [DONE]\n\n"), stream=True)
    _, response = Redactor().bodies(ctx, BodyCapture())
    assert response is not None
    assert "abcdefghij" not in response and "klmnop" not in response
    assert response.endswith(" thanks")


def test_a_browsers_key_in_its_websocket_subprotocols_is_masked() -> None:
    browser_key = "plainbrowsersecret42xyz"  # a key no built-in pattern knows
    ctx = call(response_body=b'{"text":"you said ' + browser_key.encode() + b'"}')
    ctx.request.headers = [
        (b"sec-websocket-protocol", b"realtime, openai-insecure-api-key." + browser_key.encode())
    ]
    ctx.request.body = b'{"note":"my key: ' + browser_key.encode() + b'"}'
    request, response = Redactor().bodies(ctx, BodyCapture(max_bytes=4096))
    assert browser_key not in request and MASK in request
    assert response is not None and browser_key not in response
