"""Mailed sign-in links: how an unrecognised device proves the owner is there.

Used when the password alone is no longer tried for an account (``user.login``: 100
consecutive failures) or whenever a person asks for one. The link goes only to the
verified address on file, is 256 random bits stored as a SHA-256 hash (EmailToken,
purpose ``signin_link``), works once and expires after ``signin_link_seconds``.

Using the link does not sign anyone in. It makes this browser a recognised device for
the account and clears this address's block; the person then enters the password as
usual, and the MFA gate asks for whatever the policy asks. So the link stands in for
"a device we know", never for the password or a second factor: a mailbox alone does not
open an account (DESIGN: recovery never weakens the account).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.accounts.emails import normalize_email
from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import looks_like_secret, new_secret, sha256_hex
from idp.db import utcnow
from idp.errors import InvalidInput, InvalidToken
from idp.models import EmailToken, User
from idp.notify.messages import MailComposer
from idp.protection.metrics import Metrics

SIGNIN_LINK = "signin_link"


class SigninLinks:
    def __init__(
        self,
        *,
        db: Session,
        audit: AuditService,
        mail: MailComposer,
        metrics: Metrics,
        issuer: str,
        lifetime_seconds: int,
    ) -> None:
        self.db = db
        self.audit = audit
        self.mail = mail
        self.metrics = metrics
        self.issuer = issuer
        self.lifetime = dt.timedelta(seconds=lifetime_seconds)

    def send(self, raw_email: str, *, ctx: RequestContext) -> None:
        """Mail a link when the address is a verified, active account; silent otherwise."""
        try:
            email = normalize_email(raw_email)
        except InvalidInput:
            return
        user = self.db.scalar(select(User).where(User.email == email))
        if user is None or not user.email_verified or not user.active:
            self.audit.record("signin_link.not_sent", ctx=ctx, user_id=user.id if user else None)
            return
        secret = new_secret()
        self.db.add(
            EmailToken(
                purpose=SIGNIN_LINK,
                user_id=user.id,
                email=user.email,
                token_hash=sha256_hex(secret),
                expires_at=utcnow() + self.lifetime,
            )
        )
        self.audit.record("signin_link.sent", ctx=ctx, user_id=user.id)
        self.metrics.inc("idp_signin_links_total", outcome="sent")
        self.mail.send(
            "signin_link",
            to=user.email,
            subject="Your sign-in link",
            link=f"{self.issuer}/login/link/confirm?{urlencode({'token': secret})}",
            minutes=int(self.lifetime.total_seconds() // 60),
            ip=ctx.ip or "unknown",
        )

    def use(self, token: str, *, ctx: RequestContext) -> User:
        """The account whose link this is; the link is spent. InvalidToken otherwise."""
        if not looks_like_secret(token):
            raise InvalidToken()
        record = self.db.scalar(
            select(EmailToken).where(EmailToken.token_hash == sha256_hex(token), EmailToken.purpose == SIGNIN_LINK)
        )
        if record is None or record.used_at is not None or utcnow() >= record.expires_at:
            self.audit.record("signin_link.rejected", ctx=ctx, user_id=record.user_id if record else None)
            self.metrics.inc("idp_signin_links_total", outcome="rejected")
            raise InvalidToken()
        user = self.db.get(User, record.user_id)
        # A link mailed to an address the account no longer has proves nothing.
        if user is None or user.email != record.email or not user.active:
            raise InvalidToken()
        record.used_at = utcnow()
        self.audit.record("signin_link.used", ctx=ctx, user_id=user.id)
        self.metrics.inc("idp_signin_links_total", outcome="used")
        return user
