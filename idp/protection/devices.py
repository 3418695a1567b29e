"""Recognised devices: a signed, long-lived cookie naming the accounts signed in on it.

Cookie ``__Host-idp_device`` (``idp_device`` on plain-http localhost, like the SSO cookie),
HttpOnly, SameSite=Lax, one year by default. Its value is an itsdangerous signature
(HMAC-SHA256 under ``kek.derive("device-cookie")``) over::

    {"d": <random device id>, "a": [<tag of user id>, ...]}

Tags are keyed hashes of user ids, so the cookie names no account. A browser earns a tag
for an account by completing a sign-in there (whatever factors the gate asked for) or
by using a mailed sign-in link; it keeps at most ``MAX_ACCOUNTS`` (most recent last).

A forged, expired or foreign cookie is simply "not recognised". Stealing the cookie
alone gives nothing: the password (and the second factor it did not skip) is still asked.

This module is Flask-free; the per-request helpers live in idp/web/protection.py
(``is_recognised(request, user_id)``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "idp_device"
HOST_COOKIE = "__Host-idp_device"
MAX_ACCOUNTS = 5


@dataclass(frozen=True)
class Device:
    id: str
    tags: tuple[str, ...]


class DeviceCookies:
    def __init__(self, *, key: bytes, max_age_seconds: int, local_http: bool) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="idp.device-cookie")
        self._tag_key = hmac.new(key, b"account-tag", hashlib.sha256).digest()
        self.max_age = max_age_seconds
        self.name = COOKIE if local_http else HOST_COOKIE
        self.secure = not local_http

    def tag(self, user_id: str) -> str:
        return hmac.new(self._tag_key, user_id.encode(), hashlib.sha256).hexdigest()[:24]

    def read(self, cookies: Mapping[str, str]) -> Device | None:
        raw = cookies.get(self.name)
        if not raw or len(raw) > 2048:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("d"), str) or not isinstance(data.get("a"), list):
            return None
        return Device(id=data["d"], tags=tuple(t for t in data["a"] if isinstance(t, str)))

    def recognised(self, cookies: Mapping[str, str], user_id: str) -> Device | None:
        """The device when it is recognised for this account, else None."""
        device = self.read(cookies)
        tag = self.tag(user_id)
        if device is not None and any(hmac.compare_digest(t.encode(), tag.encode()) for t in device.tags):
            return device
        return None

    def with_account(self, cookies: Mapping[str, str], user_id: str) -> str:
        """The new cookie value: this browser's device (or a new one) now knows the account."""
        device = self.read(cookies) or Device(id=secrets.token_urlsafe(16), tags=())
        tag = self.tag(user_id)
        tags = [t for t in device.tags if t != tag][-(MAX_ACCOUNTS - 1):] + [tag]
        return self._serializer.dumps({"d": device.id, "a": tags})
