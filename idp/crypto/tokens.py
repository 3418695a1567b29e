"""Random secrets that are handed out once and stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret() -> str:
    """256 random bits, URL-safe: cookies, mail links, refresh tokens."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    # A fast hash is right for 256-bit random secrets: there is nothing to brute-force.
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
