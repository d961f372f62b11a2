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
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from tollway.batches.jobs import Line
from tollway.config.snapshot import ClientKey, Deployment, ProviderRuntime, RuntimeConfig
from tollway.limits.estimate import call_tokens
from tollway.llm.catalog import ModelInfo, batch_cost


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


def upstream_lines(lines: Iterable[Line], endpoint: str, where: Destination) -> Iterator[bytes]:
    """The batch's input as the provider gets it, a line at a time: each line's model
    renamed."""
    for line in lines:
        body = orjson.loads(line.body)
        body["model"] = where.upstream_model(body["model"])
        yield (
            orjson.dumps(
                {"custom_id": line.custom_id, "method": "POST", "url": endpoint, "body": body}
            )
            + b"\n"
        )


def write_upload(
    lines: Iterable[Line], endpoint: str, where: Destination, filename: str, into: Path
) -> tuple[bytes, int]:
    """A Files API upload (`purpose: batch`, the input as the provider gets it) written to
    `into` a line at a time, so that the input is never held twice in memory: the form's
    content type, and the size of the file in it (the provider lists it under that size)."""
    boundary = b"tollway-" + secrets.token_hex(16).encode()
    quoted = filename.replace('"', "_").encode()
    size = 0
    with into.open("wb") as out:
        out.write(
            b"".join(
                (
                    b"--%s\r\n" % boundary,
                    b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
                    b"--%s\r\n" % boundary,
                    b'Content-Disposition: form-data; name="file"; filename="%s"\r\n' % quoted,
                    b"Content-Type: application/jsonl\r\n\r\n",
                )
            )
        )
        for data in upstream_lines(lines, endpoint, where):
            out.write(data)
            size += len(data)
        out.write(b"\r\n--%s--\r\n" % boundary)
    return b"multipart/form-data; boundary=" + boundary, size


@dataclass(frozen=True, slots=True)
class Demand:
    """What a batch's lines for one model ask of the key: the first line (checked as a call
    would be), how many lines, and their estimated tokens in and out."""

    first: Line
    lines: int
    input_tokens: int
    output_tokens: int


def survey(lines: Iterable[Line], operation: str, output_default: int) -> dict[str, Demand] | None:
    """Per model, what the batch's lines ask for (estimate.py's estimate of each line, as the
    budget reserves for a call); None when a line names no model. Run off the event loop: it
    parses every line."""
    found: dict[str, Demand] = {}
    for line in lines:
        model = line_model(line)
        if model is None:
            return None
        tokens_in, tokens_out = call_tokens(line.body, operation, output_default)
        seen = found.get(model)
        if seen is None:
            found[model] = Demand(line, 1, tokens_in, tokens_out)
        else:
            found[model] = Demand(
                seen.first,
                seen.lines + 1,
                seen.input_tokens + tokens_in,
                seen.output_tokens + tokens_out,
            )
    return found


def estimated_cost(demand: Demand, info: ModelInfo | None, provider_type: str) -> Decimal:
    """The batch price of a model's lines, at their estimated tokens (0 when unpriced)."""
    if info is None:
        return Decimal(0)
    usage = {"prompt_tokens": demand.input_tokens, "completion_tokens": demand.output_tokens}
    return batch_cost(info, usage, provider_type)


def results(raws: Iterable[bytes]) -> Iterator[tuple[str, int, dict[str, Any] | None]]:
    """Each line of a provider's output or error file: its custom_id, the status its request
    got (0 when it got no answer: an expired or cancelled request), and the answer's body."""
    for raw in raws:
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


@dataclass(frozen=True, slots=True)
class ProviderBatch:
    """A provider's batch object, read without trusting its shape: a field of the wrong type
    reads as absent (None, 0, no errors), never as an exception."""

    id: str | None
    status: str | None
    total: int | None
    completed: int
    failed: int
    stamps: dict[str, int]
    output_file_id: str | None
    error_file_id: str | None
    errors: list[dict[str, Any]]


_STAMPS = (
    "created_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelled_at",
)


def read_batch(found: Any) -> ProviderBatch:
    seen = found if isinstance(found, dict) else {}
    counts = seen.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    errors = seen.get("errors")
    listed = errors.get("data") if isinstance(errors, dict) else None
    return ProviderBatch(
        id=_text(seen.get("id")),
        status=_text(seen.get("status")),
        total=_count(counts.get("total")),
        completed=_count(counts.get("completed")) or 0,
        failed=_count(counts.get("failed")) or 0,
        stamps={k: v for k in _STAMPS if (v := _count(seen.get(k))) is not None},
        output_file_id=_text(seen.get("output_file_id")),
        error_file_id=_text(seen.get("error_file_id")),
        errors=[e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else [],
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    # bool is an int to Python, never a count.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def info_state(info: ModelInfo | None) -> dict[str, Any] | None:
    """A deployment's prices as a batch's state keeps them (JSON: Decimals as strings)."""
    if info is None:
        return None
    return {
        f.name: str(v) if isinstance(v := getattr(info, f.name), Decimal) else v
        for f in fields(info)
        if f.init
    }


def info_of_state(saved: Any) -> ModelInfo | None:
    """The prices `info_state` kept (None when there were none, or they do not read)."""
    if not isinstance(saved, dict):
        return None
    try:
        values: dict[str, Any] = {
            f.name: Decimal(saved[f.name])
            if f.type in ("Decimal", "Decimal | None") and saved.get(f.name) is not None
            else saved.get(f.name)
            for f in fields(ModelInfo)
            if f.init
        }
        return ModelInfo(**values)
    except (TypeError, ValueError, ArithmeticError):
        return None


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


def find_batch(listing: Any, file_id: str, since: int | None) -> tuple[Any, str | None]:
    """In one page of a provider's batch list (newest first), a batch made from our input
    file before a restart; else the id to list the next page after, or None when there is
    none or the page reached batches made before the file (`since`: its created_at), which
    cannot be of it."""
    data = listing.get("data") if isinstance(listing, dict) else None
    items = data if isinstance(data, list) else []
    for item in items:
        if isinstance(item, dict) and item.get("input_file_id") == file_id:
            return item, None
    if not items or listing.get("has_more") is not True:
        return None, None
    oldest = items[-1] if isinstance(items[-1], dict) else {}
    made = _count(oldest.get("created_at"))
    if since is not None and made is not None and made < since:
        return None, None
    return None, _text(listing.get("last_id")) or _text(oldest.get("id"))
