"""Secrets that callers present: app API keys, admin tokens and user passwords.

API keys and admin tokens are long random strings with a recognisable prefix (`tw-` for app
keys, `twa-` for admin tokens): only their SHA-256 is stored, with the first characters kept
visible so that people can tell keys apart. Passwords are hashed with argon2id.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

APP_KEY_PREFIX = "tw-"
ADMIN_TOKEN_PREFIX = "twa-"
# Characters after the prefix that stay visible in listings.
VISIBLE = 6
_ALPHABET = string.ascii_letters + string.digits
_LENGTH = 40  # about 238 bits

_hasher = PasswordHasher()


def generate(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


def digest(secret: str) -> str:
    """The hex SHA-256 under which a key or token is stored (the data plane's `hash_key`)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def visible_prefix(secret: str) -> str:
    """What listings show of a key: its prefix and a few characters."""
    head = ADMIN_TOKEN_PREFIX if secret.startswith(ADMIN_TOKEN_PREFIX) else APP_KEY_PREFIX
    if not secret.startswith(head):
        return secret[:VISIBLE]
    return secret[: len(head) + VISIBLE]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def spend_verification(password: str) -> None:
    """Costs what a verification costs, for a login with an unknown name, so that the
    answer's timing does not tell which names exist."""
    verify_password(_dummy_hash(), password)
