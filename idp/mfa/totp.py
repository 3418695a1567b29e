"""TOTP authenticators (RFC 6238): enrolment, verification with replay refusal, rename, remove."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from idp.crypto.kek import Kek
from idp.db import random_id, utcnow
from idp.mfa import totp_adapter
from idp.mfa.errors import FactorNotAllowed, InvalidCode
from idp.models import TotpAuthenticator, User

# An enrolment that was shown but never confirmed is dropped after this long.
PENDING_LIFETIME = dt.timedelta(minutes=15)
MAX_AUTHENTICATORS = 5  # every extra seed is one more chance for a guessed code


def _purpose(authenticator_id: str) -> str:
    return f"mfa.totp:{authenticator_id}"


class TotpService:
    def __init__(self, *, db: Session, kek: Kek, issuer_name: str, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.kek = kek
        self.issuer_name = issuer_name
        self.clock = clock

    # ------------------------------------------------------------- enrolment
    def begin(self, user: User) -> TotpAuthenticator:
        """A new pending authenticator with a fresh seed (older unconfirmed ones go)."""
        if len(self.confirmed(user)) >= MAX_AUTHENTICATORS:
            raise FactorNotAllowed(f"You can have at most {MAX_AUTHENTICATORS} authenticator apps.")
        self.db.execute(
            delete(TotpAuthenticator).where(
                TotpAuthenticator.user_id == user.id, TotpAuthenticator.confirmed_at.is_(None)
            )
        )
        row_id = random_id()
        secret = totp_adapter.new_secret()
        record = TotpAuthenticator(
            id=row_id,
            user_id=user.id,
            name="Authenticator app",
            secret_encrypted=self.kek.encrypt(secret.encode(), purpose=_purpose(row_id)),
            created_at=self.clock(),
        )
        self.db.add(record)
        self.db.flush()
        return record

    def pending(self, user: User, authenticator_id: str) -> TotpAuthenticator | None:
        record = self.db.get(TotpAuthenticator, authenticator_id) if authenticator_id else None
        if record is None or record.user_id != user.id or record.confirmed_at is not None:
            return None
        if self.clock() - record.created_at > PENDING_LIFETIME:
            return None
        return record

    def secret(self, record: TotpAuthenticator) -> str:
        return self.kek.decrypt(record.secret_encrypted, purpose=_purpose(record.id)).decode()

    def provisioning_uri(self, record: TotpAuthenticator, *, account: str) -> str:
        return totp_adapter.provisioning_uri(self.secret(record), account=account, issuer=self.issuer_name)

    def confirm(self, user: User, authenticator_id: str, raw_code: str, *, name: str) -> TotpAuthenticator:
        """Activate a pending authenticator: only a correct code proves the app has the seed."""
        record = self.pending(user, authenticator_id)
        if record is None:
            raise InvalidCode("This set-up has expired. Start again.")
        self._consume(record, raw_code)
        record.confirmed_at = self.clock()
        record.name = name
        return record

    # ----------------------------------------------------------- verification
    def verify(self, user: User, raw_code: str) -> TotpAuthenticator:
        """The confirmed authenticator the code belongs to, or InvalidCode."""
        for record in self.confirmed(user):
            try:
                self._consume(record, raw_code)
            except InvalidCode:
                continue
            return record
        raise InvalidCode()

    def _consume(self, record: TotpAuthenticator, raw_code: str) -> None:
        code = totp_adapter.normalize_code(raw_code)
        if code is None:
            raise InvalidCode("Enter the 6-digit code from your authenticator app.")
        now = self.clock()
        step = totp_adapter.matching_step(self.secret(record), code, at=now, after_step=record.last_used_step)
        if step is None:
            raise InvalidCode()
        # RFC 6238 §5.2: one acceptance per time step. The conditional UPDATE makes two
        # concurrent requests carrying the same code race for one row: only one wins.
        won = self.db.execute(
            update(TotpAuthenticator)
            .where(
                TotpAuthenticator.id == record.id,
                or_(TotpAuthenticator.last_used_step.is_(None), TotpAuthenticator.last_used_step < step),
            )
            .values(last_used_step=step, last_used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            raise InvalidCode()
        record.last_used_step = step
        record.last_used_at = now

    # ------------------------------------------------------------- management
    def confirmed(self, user: User) -> list[TotpAuthenticator]:
        stmt = (
            select(TotpAuthenticator)
            .where(TotpAuthenticator.user_id == user.id, TotpAuthenticator.confirmed_at.is_not(None))
            .order_by(TotpAuthenticator.created_at)
        )
        return list(self.db.scalars(stmt))

    def get(self, user: User, authenticator_id: str) -> TotpAuthenticator | None:
        record = self.db.get(TotpAuthenticator, authenticator_id) if len(authenticator_id) <= 32 else None
        if record is None or record.user_id != user.id or record.confirmed_at is None:
            return None
        return record

    def remove(self, record: TotpAuthenticator) -> None:
        self.db.delete(record)
        self.db.flush()
