"""The only module importing pyotp (STYLE 6): RFC 6238 parameters fixed here.

SHA-1, 6 digits, 30-second steps: what every authenticator app implements. The secret is
160 random bits (RFC 4226 §4 recommends at least that). Codes are accepted one step
either side of now (RFC 6238 §5.2, clock drift) and only at a step later than the last
one accepted, so a code seen once, or an older one still in the window, never works again.
"""

from __future__ import annotations

import datetime as dt
import hmac

import pyotp

DIGITS = 6
INTERVAL = 30
WINDOW = 1  # steps either side of now
_ASCII_DIGITS = frozenset("0123456789")


def new_secret() -> str:
    return pyotp.random_base32(length=32)  # 32 base32 chars = 160 bits


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(name=account, issuer_name=issuer)


def normalize_code(raw: str) -> str | None:
    """Six ASCII digits (spaces allowed between), or None. No Unicode digits, no letters."""
    value = raw.replace(" ", "").strip()
    if len(value) != DIGITS or not set(value) <= _ASCII_DIGITS:
        return None
    return value


def time_step(at: dt.datetime) -> int:
    return int(at.timestamp()) // INTERVAL


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).generate_otp(step)


def matching_step(secret: str, code: str, *, at: dt.datetime, after_step: int | None) -> int | None:
    """The time step the code belongs to, if it is valid now and newer than `after_step`."""
    now = time_step(at)
    matched = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        # Compare every candidate (constant work), then apply the replay rule.
        if hmac.compare_digest(code_at_step(secret, step), code) and matched is None:
            matched = step
    if matched is None or (after_step is not None and matched <= after_step):
        return None
    return matched
