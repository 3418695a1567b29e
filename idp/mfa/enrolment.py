"""Binding a factor: the mailed proof that must come first, and the notice that follows.

An account that has only a password is exactly what a credential-stuffing attacker holds.
So a factor binds only after a one-time link, mailed to the account's verified address,
has been opened in the same browser session that asks to bind (issue 4). Every binding
and removal is audited and mailed to the owner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import new_secret, sha256_hex
from idp.db import utcnow
from idp.errors import InvalidToken
from idp.mfa.errors import ProofRequired, TooManyAttempts
from idp.models import EnrolmentProof, SsoSession, User
from idp.notify.messages import MailComposer

# The link is short-lived: it stands in for a factor the account does not have yet.
PROOF_LIFETIME = dt.timedelta(minutes=15)
# After use, this browser session may bind factors for this long.
GRANT_LIFETIME = dt.timedelta(minutes=30)
# Mails per session per PROOF_LIFETIME: enough for a lost message, too few to flood a mailbox.
MAX_PROOFS = 3


class EnrolmentService:
    def __init__(
        self,
        *,
        db: Session,
        audit: AuditService,
        mail: MailComposer,
        issuer: str,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.audit = audit
        self.mail = mail
        self.issuer = issuer
        self.clock = clock

    def request_proof(self, user: User, sso: SsoSession, *, next_url: str, ctx: RequestContext) -> None:
        if not user.email_verified:
            raise ProofRequired("Confirm your email address first.")
        now = self.clock()
        recent = self.db.scalar(
            select(func.count())
            .select_from(EnrolmentProof)
            .where(EnrolmentProof.sso_session_id == sso.id, EnrolmentProof.created_at > now - PROOF_LIFETIME)
        )
        if (recent or 0) >= MAX_PROOFS:
            raise TooManyAttempts("We have already sent you several links. Use the latest one, or wait a while.")
        secret = new_secret()
        self.db.add(
            EnrolmentProof(
                user_id=user.id,
                sso_session_id=sso.id,
                email=user.email,
                token_hash=sha256_hex(secret),
                created_at=now,
                expires_at=now + PROOF_LIFETIME,
            )
        )
        self.audit.record("mfa.proof_sent", ctx=ctx, user_id=user.id, session_id=sso.id)
        link = f"{self.issuer}/mfa/email-proof?{urlencode({'token': secret, 'next': next_url})}"
        self.mail.send(
            "mfa_email_proof",
            to=user.email,
            subject="Confirm it is you before adding a sign-in method",
            link=link,
            minutes=int(PROOF_LIFETIME.total_seconds() // 60),
            ip=ctx.ip or "unknown",
        )

    def use_proof(self, token: str, sso: SsoSession, *, ctx: RequestContext) -> None:
        """Spend a mailed link; only in the browser session that asked for it."""
        if not token or len(token) > 128:
            raise InvalidToken()
        record = self.db.scalar(select(EnrolmentProof).where(EnrolmentProof.token_hash == sha256_hex(token)))
        user = self.db.get(User, record.user_id) if record else None
        if (
            record is None
            or user is None
            or record.used_at is not None
            or self.clock() >= record.expires_at
            or record.sso_session_id != sso.id
            or record.user_id != sso.user_id
            or record.email != user.email
            or not user.email_verified
        ):
            self.audit.record(
                "mfa.proof_failed", ctx=ctx, user_id=sso.user_id, session_id=sso.id,
                other_session=record is not None and record.sso_session_id != sso.id,
            )
            raise InvalidToken("This link is invalid, has expired, or was opened in another browser. "
                               "Open it in the browser where you signed in, or ask for a new one.")
        record.used_at = self.clock()
        self.audit.record("mfa.proof_used", ctx=ctx, user_id=user.id, session_id=sso.id)

    def has_proof(self, sso: SsoSession) -> bool:
        since = self.clock() - GRANT_LIFETIME
        found = self.db.scalar(
            select(EnrolmentProof.id)
            .where(
                EnrolmentProof.sso_session_id == sso.id,
                EnrolmentProof.user_id == sso.user_id,
                EnrolmentProof.used_at.is_not(None),
                EnrolmentProof.used_at > since,
            )
            .limit(1)
        )
        return found is not None

    # --------------------------------------------------------------- notices
    def notify(self, user: User, *, event: str, kind: str, name: str, ctx: RequestContext,
               session_id: str | None = None) -> None:
        """Audit and mail one factor change: event is mfa.factor_added / mfa.factor_removed / ..."""
        self.audit.record(event, ctx=ctx, user_id=user.id, session_id=session_id, kind=kind, name=name)
        what = {
            "mfa.factor_added": "was added to",
            "mfa.factor_removed": "was removed from",
            "mfa.factor_renamed": "was renamed on",
            "mfa.recovery_codes_generated": "were created for",
        }[event]
        self.mail.send(
            "mfa_factor_changed",
            to=user.email,
            subject="A sign-in method changed on your account",
            what=what,
            kind=kind,
            name=name,
            ip=ctx.ip or "unknown",
            when=self.clock().strftime("%Y-%m-%d %H:%M UTC"),
            account_url=f"{self.issuer}/account",
        )
