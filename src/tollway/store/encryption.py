"""Sealing provider credentials at rest: AES-256-GCM under a key derived from a secret.

The secret is TOLLWAY_SECRET_KEY (any string of 32 characters or more; `tollway secret-key`
prints a fresh one). A single-node store without it keeps a generated key in its data
directory (`secret.key`, mode 0600). Each sealed value names the key it was sealed with, so
opening it with another key says so instead of failing obscurely.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tollway.store.errors import SecretKeyError

KEY_FILE = "secret.key"
MIN_SECRET_LENGTH = 32
_FORMAT = "v1"
_AAD = b"tollway provider credentials"


def new_secret() -> str:
    """A fresh random secret suitable for TOLLWAY_SECRET_KEY."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


class SecretBox:
    """Seals and opens string mappings with one key."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise SecretKeyError(
                f"the secret key must be at least {MIN_SECRET_LENGTH} characters long "
                "(`tollway secret-key` prints a new one)"
            )
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"tollway/store/v1"
        ).derive(secret.encode())
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:12]

    def seal(self, values: dict[str, str]) -> str:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(values, sort_keys=True).encode()
        sealed = self._aead.encrypt(nonce, plain, _AAD)
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_FORMAT}.{self.key_id}.{body}"

    def open(self, sealed: str) -> dict[str, str]:
        try:
            version, key_id, body = sealed.split(".", 2)
        except ValueError:
            raise SecretKeyError("a sealed credential is malformed") from None
        if version != _FORMAT:
            raise SecretKeyError(f"a sealed credential has an unknown format {version!r}")
        if key_id != self.key_id:
            raise SecretKeyError(
                f"provider credentials were sealed with another secret key (id {key_id}; "
                f"the configured key is {self.key_id}): set the TOLLWAY_SECRET_KEY they were "
                "stored with"
            )
        raw = base64.urlsafe_b64decode(body)
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], _AAD)
        except InvalidTag:
            raise SecretKeyError("a sealed credential failed its integrity check") from None
        values = json.loads(plain)
        if not isinstance(values, dict):
            raise SecretKeyError("a sealed credential is malformed")
        return {str(k): str(v) for k, v in values.items()}


def key_file_secret(data_dir: Path) -> str:
    """The secret kept in a data directory, created (0600) on first use."""
    path = data_dir / KEY_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first: use theirs.
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
    return secret
