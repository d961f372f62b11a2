"""Batches passed through to a provider's own Batch API: which batches go, and what goes.

A batch is passed through when every line's model is routed, for the batch's key, to
deployments at one and the same provider whose type has a Batch API (OpenAI's) and that
allows it (`batch_passthrough`), each model under one upstream name. Anything else (a model
spread over two providers, a provider without a Batch API or that turned it off, a model the
key may not use, a prompt) runs in the gateway, line by line, as before.

What goes up is the batch's input with each line's `model` renamed to the deployment's name
for it; what comes back (the provider's output and error files) is kept as the provider wrote
it, its lines' `model` included: as for a native call, whose answer the gateway relays as it
is. The pieces here do no I/O beyond the batch's own files; proxy/handlers/batch_passthrough.py
talks to the provider.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson

from tollway.batches.jobs import Line
from tollway.config.snapshot import ClientKey, Deployment, ProviderRuntime, RuntimeConfig


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a passed-through batch goes: the provider, and per model the client asked for,
    the deployment that serves it there (its upstream name, its prices)."""

    provider: ProviderRuntime
    deployments: dict[str, Deployment]

    def upstream_model(self, model: str) -> str:
        deployment = self.deployments[model]
        return deployment.model or model


def line_model(line: Line) -> str | None:
    """The model a batch line asks for (its body was checked to be a JSON object)."""
    model = orjson.loads(line.body).get("model")
    return model if isinstance(model, str) else None


def destination(
    config: RuntimeConfig, key: ClientKey | None, models: set[str]
) -> Destination | None:
    """Where a batch whose lines ask for `models` is passed through to, or None when the
    gateway runs it: every model must be one the key may use, routed to deployments all at
    one provider that passes batches, under one upstream name each."""
    if not models:
        return None
    provider: ProviderRuntime | None = None
    chosen: dict[str, Deployment] = {}
    for model in models:
        if model.startswith("prompt:") or (key is not None and not key.may_use(model)):
            return None
        route = config.route(model)
        if route is None or not route.deployments:
            return None
        names = set()
        for deployment in route.deployments:
            at = deployment.provider
            if not at.batch_passthrough or (provider is not None and at.name != provider.name):
                return None
            provider = at
            names.add(deployment.model_for(route.name, model))
        if len(names) != 1:
            return None  # one model, two upstream names: not one request per line upstream
        # The name actually sent: a deployment without a name of its own on a '*' route
        # sends the one asked for.
        chosen[model] = replace(route.deployments[0], model=names.pop())
    assert provider is not None
    return Destination(provider, chosen)


def upstream_input(lines: Iterable[Line], endpoint: str, where: Destination) -> bytes:
    """The batch's input as the provider gets it: each line's model renamed."""
    out = bytearray()
    for line in lines:
        body = orjson.loads(line.body)
        body["model"] = where.upstream_model(body["model"])
        out += orjson.dumps(
            {"custom_id": line.custom_id, "method": "POST", "url": endpoint, "body": body}
        )
        out += b"\n"
    return bytes(out)


def upload_form(filename: str, data: bytes) -> tuple[bytes, bytes]:
    """A Files API upload (`purpose: batch`, the file): its content type and body."""
    boundary = b"tollway-" + secrets.token_hex(16).encode()
    quoted = filename.replace('"', "_").encode()
    body = b"".join(
        (
            b"--%s\r\n" % boundary,
            b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
            b"--%s\r\n" % boundary,
            b'Content-Disposition: form-data; name="file"; filename="%s"\r\n' % quoted,
            b"Content-Type: application/jsonl\r\n\r\n",
            data,
            b"\r\n--%s--\r\n" % boundary,
        )
    )
    return b"multipart/form-data; boundary=" + boundary, body


def results(data: bytes) -> Iterator[tuple[str, int, dict[str, Any] | None]]:
    """Each line of a provider's output or error file: its custom_id, the status its request
    got (0 when it got no answer: an expired or cancelled request), and the answer's body."""
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            continue
        response = line.get("response")
        if isinstance(response, dict):
            status = response.get("status_code")
            body = response.get("body")
            yield (
                line["custom_id"],
                status if isinstance(status, int) else 0,
                body if isinstance(body, dict) else None,
            )
        else:
            yield line["custom_id"], 0, None


def find_file(listing: Any, filename: str, size: int) -> str | None:
    """In a provider's file list, the id of an upload of ours made before a restart."""
    for item in listing.get("data", ()) if isinstance(listing, dict) else ():
        if (
            isinstance(item, dict)
            and item.get("filename") == filename
            and item.get("bytes") == size
            and item.get("status") != "error"
            and isinstance(item.get("id"), str)
        ):
            return str(item["id"])
    return None


def find_batch(listing: Any, file_id: str) -> dict[str, Any] | None:
    """In a provider's batch list, a batch made from our input file before a restart."""
    for item in listing.get("data", ()) if isinstance(listing, dict) else ():
        if isinstance(item, dict) and item.get("input_file_id") == file_id:
            return item
    return None
