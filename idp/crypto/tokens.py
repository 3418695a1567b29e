"""Random secrets that are handed out once and stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# What new_secret() produces (base64url, no padding), with room for longer secrets later.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")


def new_secret() -> str:
    """256 random bits, URL-safe: cookies, mail links, refresh tokens."""
    return secrets.token_urlsafe(32)


def looks_like_secret(value: str) -> bool:
    """Cheap shape check before any look-up: anything else cannot be one of ours."""
    return _SECRET_SHAPE.fullmatch(value) is not None


def sha256_hex(value: str) -> str:
    # A fast hash is right for 256-bit random secrets: there is nothing to brute-force.
    return hashlib.sha256(value.encode()).hexdigest()


def strong_etag(body: bytes) -> str:
    """An HTTP strong entity tag (RFC 9110 §8.8.3) for a document: the same bytes, the same tag."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
