"""Consistent hashing for REST target pools: weighted rendezvous (highest random weight).

Each (key, target) pair gets a pseudo-random score from the key's hash and the target's
seed; the key goes to the target with the highest score. So a key stays on its target as long
as that target is in the pool, and when a target leaves only the keys it held move (to their
second-best target): 1/N of the keys for N equal targets, the least any scheme can move. A
target's weight scales its share (score = -weight / ln(u), u uniform in (0, 1)), exactly in
expectation, with no virtual nodes to tune.

Hashes are BLAKE2b, not Python's `hash` (salted per process): every worker and every node
sends a key to the same target.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from tollway.config.rest_service import RestTarget

_MASK = (1 << 64) - 1


def key_hash(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest())


def _mix(value: int) -> int:
    """SplitMix64's finaliser: 64 well-mixed bits from a key hash combined with a seed."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def score(hashed: int, seed: int, weight: int) -> float:
    # 53 bits for a double strictly inside (0, 1).
    uniform = ((_mix(hashed ^ seed) >> 11) + 0.5) / (1 << 53)
    return -weight / math.log(uniform)


def choose(key: bytes, targets: Sequence[RestTarget]) -> RestTarget:
    """The target `key` belongs to among `targets` (not empty)."""
    if len(targets) == 1:
        return targets[0]
    hashed = key_hash(key)
    best = targets[0]
    best_score = score(hashed, best.seed, best.weight)
    for target in targets[1:]:
        value = score(hashed, target.seed, target.weight)
        if value > best_score:
            best, best_score = target, value
    return best
