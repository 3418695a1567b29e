"""The key-encryption key (KEK): envelope encryption for secrets kept in the database.

Signing keys and TOTP secrets are stored encrypted with AES-256-GCM under the KEK, with
the row's purpose bound in as associated data so a ciphertext cannot be moved to
another column. The KEK itself never enters the database: it comes from ``IDP_KEK`` or
from ``keys/kek``, generated there (mode 0600) on first start in the embedded mode.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEK_FILE = "kek"
_VERSION = b"\x01"


class KekError(RuntimeError):
    pass


class Kek:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KekError("the key-encryption key must be 32 bytes")
        self._key = key

    def __repr__(self) -> str:  # never print key material
        return "Kek(<redacted>)"

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """An independent subkey per purpose (HKDF-SHA256, RFC 5869)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
            self._key
        )

    def encrypt(self, plaintext: bytes, *, purpose: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return _VERSION + nonce + AESGCM(self._key).encrypt(nonce, plaintext, purpose.encode())

    def decrypt(self, blob: bytes, *, purpose: str) -> bytes:
        if len(blob) < 29 or blob[:1] != _VERSION:
            raise KekError("not a ciphertext of this key-encryption key")
        try:
            return AESGCM(self._key).decrypt(blob[1:13], blob[13:], purpose.encode())
        except InvalidTag:
            raise KekError("ciphertext does not verify under this key-encryption key") from None


def load_or_create(keys_dir: Path, from_env: str | None = None) -> Kek:
    if from_env:
        try:
            return Kek(base64.b64decode(from_env, validate=True))
        except (ValueError, KekError):
            raise KekError("IDP_KEK must be 32 bytes, base64-encoded") from None
    path = keys_dir / KEK_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(secrets.token_bytes(32))
        # O_EXCL: two processes starting at once cannot both write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded + b"\n")
    if path.stat().st_mode & 0o077:
        raise KekError(f"{path} is readable by group or others; chmod 600 it")
    try:
        return Kek(base64.b64decode(path.read_bytes().strip(), validate=True))
    except (ValueError, KekError):
        raise KekError(f"{path} does not hold a base64 32-byte key") from None
