"""OpenTelemetry traces: one span per call, exported over OTLP/HTTP when an endpoint is
configured, a child of the client's W3C trace context, and passed on to the upstream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateways import CLIENT_KEY, keyed_gateway
from servers import HOST, Process, get_json

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP receiver: decodes every export it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.received = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                export = ExportTraceServiceRequest()
                export.ParseFromString(body)
                for resource in export.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                collector.received.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.spans


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    found.server.shutdown()


@pytest.fixture(scope="module")
def gateway(workdir: Path, mock: Process, collector: Collector) -> Iterator[Process]:
    provider = {"base_url": mock.url + "/v1", "api_key_env": "MOCK_KEY"}
    process = keyed_gateway(
        workdir,
        {"mock": provider},
        {"traced": ("mock", "gpt-4o-mini~echo")},
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{collector.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "tollway-under-test",
        },
    )
    yield process
    process.stop()


def test_a_call_is_a_span_under_the_clients_trace_and_its_parent_upstream(
    gateway: Process, mock: Process, collector: Collector
) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    reply = client.chat.completions.create(
        model="traced",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
    )
    assert reply.choices[0].message.content == "hello"
    [span] = collector.wait_for(1)
    assert span.trace_id.hex() == CLIENT_TRACE
    assert span.parent_span_id.hex() == CLIENT_SPAN
    assert span.name == "chat traced"
    found = attrs(span)
    assert found["gen_ai.operation.name"] == "chat"
    assert found["gen_ai.request.model"] == "traced"
    assert found["gen_ai.response.model"] == "gpt-4o-mini~echo"
    assert found["gen_ai.provider.name"] == "openai_compatible"
    assert found["gen_ai.usage.input_tokens"] > 0
    assert found["gen_ai.usage.output_tokens"] > 0
    assert found["http.response.status_code"] == 200
    assert found["tollway.outcome"] == "completed"
    # The upstream saw the gateway's span as its parent, in the same trace.
    sent = {k.lower(): v for k, v in get_json(mock.url + "/_mock/requests")[-1]["headers"].items()}
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{span.span_id.hex()}-01"


def test_a_refused_call_is_traced_too_and_a_new_trace_starts_without_a_parent(
    gateway: Process, collector: Collector
) -> None:
    before = len(collector.spans)
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="traced", messages=[{"role": "user", "content": "x"}])
    spans = collector.wait_for(before + 1)
    span = spans[before]
    assert span.parent_span_id == b"" and len(span.trace_id) == 16
    found = attrs(span)
    assert found["http.response.status_code"] == 401
    assert found["error.type"] == "invalid_api_key"


def test_the_access_log_is_one_json_line_per_request_without_secrets(
    workdir: Path, mock: Process
) -> None:
    import json

    from gateways import UPSTREAM_KEY, gateway_config
    from servers import start_gateway

    config = gateway_config(mock, mock)
    process = start_gateway(workdir, config, "--access-log", env={"MOCK_KEY": UPSTREAM_KEY})
    try:
        client = openai.OpenAI(base_url=process.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
        deadline = time.monotonic() + 5
        lines: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(lines) < 2:
            lines = [
                json.loads(line) for line in process.log().splitlines() if line.startswith("{")
            ]
            time.sleep(0.05)
        ok, missing = lines[-2], lines[-1]
        assert (ok["status"], ok["outcome"], ok["model"], ok["key"]) == (
            200,
            "completed",
            "echo",
            "tests",
        )
        assert ok["input_tokens"] > 0 and ok["duration_ms"] > 0
        assert (missing["status"], missing["error"]) == (404, "model_not_found")
        assert CLIENT_KEY not in process.log() and UPSTREAM_KEY not in process.log()
    finally:
        process.stop()
