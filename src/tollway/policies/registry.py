"""Policies by name: each is a config model (strict, so it is also the admin API's and the
console's schema) and a builder that makes the policy from that config and what the rest of the
configuration offers at compile time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tollway.policies.base import Policy
from tollway.policies.config import PolicyConfig
from tollway.policies.key_auth import KeyAuth, KeyAuthConfig

if TYPE_CHECKING:
    from tollway.config.snapshot import ClientKey


@dataclass(frozen=True, slots=True)
class CompileScope:
    """What a policy may take from the rest of the configuration when it is built."""

    keys: Mapping[bytes, ClientKey]


@dataclass(frozen=True, slots=True)
class PolicyType:
    name: str
    config: type[PolicyConfig]
    build: Callable[[Any, CompileScope], Policy]
    description: str


def _key_auth(config: KeyAuthConfig, scope: CompileScope) -> Policy:
    return KeyAuth(scope.keys, frozenset(h.encode() for h in config.headers))


POLICY_TYPES: dict[str, PolicyType] = {
    t.name: t
    for t in (
        PolicyType(
            "key_auth",
            KeyAuthConfig,
            _key_auth,
            "the caller presents a configured client key; a key's model list is enforced",
        ),
    )
}
