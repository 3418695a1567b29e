"""Recovery codes: ten single-use codes, shown once, stored as keyed hashes.

80 random bits each (16 base32 characters). Stored as HMAC-SHA256 under a KEK-derived
key, bound to the user: a database dump alone cannot be used to test guesses offline.
Regenerating deletes the old set, so a printed sheet that leaked stops working.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from idp.db import utcnow
from idp.models import RecoveryCode, User

COUNT = 10
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_LENGTH = 16
_GROUP = 4


def _format(code: str) -> str:
    return "-".join(code[i : i + _GROUP] for i in range(0, len(code), _GROUP))


def normalize(raw: str) -> str | None:
    """Lower-case, dashes and spaces dropped; None unless exactly 16 base32 characters."""
    value = raw.strip().lower().replace("-", "").replace(" ", "")
    if len(value) != _LENGTH or not all(c in _ALPHABET for c in value):
        return None
    return value


class RecoveryCodeService:
    def __init__(self, *, db: Session, key: bytes, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self._key = key
        self.clock = clock

    def _hash(self, user_id: str, code: str) -> str:
        return hmac.new(self._key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()

    def regenerate(self, user: User) -> list[str]:
        """A new set of codes (returned once, formatted); the previous set is void."""
        self.db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        codes = ["".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH)) for _ in range(COUNT)]
        now = self.clock()
        for code in codes:
            self.db.add(RecoveryCode(user_id=user.id, code_hash=self._hash(user.id, code), created_at=now))
        self.db.flush()
        return [_format(c) for c in codes]

    def use(self, user: User, raw: str) -> bool:
        """Spend one code. The conditional UPDATE makes a code usable exactly once."""
        code = normalize(raw)
        if code is None:
            return False
        spent = self.db.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == self._hash(user.id, code),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=self.clock())
            .execution_options(synchronize_session=False)
        ).rowcount
        return spent == 1

    def remaining(self, user: User) -> int:
        stmt = select(func.count()).select_from(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
        return int(self.db.scalar(stmt) or 0)

    def has_set(self, user: User) -> bool:
        stmt = select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user.id)
        return bool(self.db.scalar(stmt))
