"""The immutable runtime configuration: what the data plane reads on every request.

The control plane builds it (`config.compile`); a worker holds exactly one at a time and swaps
in a new one with a single attribute assignment, so a request sees one consistent version.
Everything here is precomputed for the hot path: header bytes, hashed keys, lookup tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from tollway.llm.catalog import Catalog, ModelInfo
from tollway.providers.registry import ProviderType
from tollway.providers.sigv4 import SigV4Signer
from tollway.proxy.balancer import RoundRobin
from tollway.proxy.http import HttpLimits
from tollway.proxy.pipeline import Pipeline
from tollway.proxy.upstream import Origin, UpstreamTimeouts


@dataclass(frozen=True, slots=True)
class ProviderRuntime:
    name: str
    origin: Origin
    # Auth and static headers, ready to write. Holds the provider's secret: never logged.
    headers: tuple[tuple[bytes, bytes], ...] = field(repr=False)
    timeouts: UpstreamTimeouts
    max_idle: int
    host: bytes
    kind: ProviderType
    api_version: str | None = None
    ca_file: str | None = None
    # Signs each request (AWS SigV4) when the provider wants a signature, not a key.
    signer: SigV4Signer | None = field(default=None, repr=False)

    def path(self, endpoint: str, model: str = "") -> bytes:
        """The upstream path of an endpoint given relative to the base URL (with the model
        for providers that put it in the path)."""
        return self.kind.path(self.origin.base_path, endpoint, model, self.api_version).encode()


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: ProviderRuntime
    # The provider's name for the model; None sends the client's name unchanged.
    model: str | None
    # Limits and prices from the catalog, when it knows the model.
    info: ModelInfo | None = None


@dataclass(frozen=True, slots=True)
class ModelRoute:
    name: str
    deployments: tuple[Deployment, ...]
    balancer: RoundRobin[Deployment] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ClientKey:
    name: str
    # Model names and globs the key may use; None for all.
    models: tuple[str, ...] | None = None

    def may_use(self, model: str) -> bool:
        if self.models is None:
            return True
        return any(
            model == allowed or (any(c in allowed for c in "*?[") and fnmatchcase(model, allowed))
            for allowed in self.models
        )


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    version: int
    models: Mapping[str, ModelRoute]
    # Routes every model name not in `models` (the '*' entry, or `serve --upstream`).
    wildcard: ModelRoute | None
    # SHA-256 digest of the key -> key. Only digests are kept in memory.
    keys: Mapping[bytes, ClientKey]
    auth_required: bool
    # The policy chain every model call runs, built once for this snapshot.
    pipeline: Pipeline
    limits: HttpLimits
    drain_timeout_s: float
    created: int
    catalog: Catalog

    def route(self, model: str) -> ModelRoute | None:
        found = self.models.get(model)
        return found if found is not None else self.wildcard
