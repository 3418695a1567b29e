"""Password reset by a mailed link (issue 7). No HTTP in here.

The incident this product answers included a reset flow that mailed the link to an
address the attacker typed. Here:

- The link goes only to the verified address on file for the *normalised* email: the
  text of the request picks an account, never a recipient ("ALICE@example.com" mails
  alice's stored address; "alice@example.com, x@evil" or a header injection is not an
  address and mails nobody).
- An unverified account gets a verification mail instead: the address was never proved,
  so a reset link there would be a password handed to whoever typed it at sign-up.
- The token is 256 random bits, stored as its SHA-256 (EmailToken, purpose
  ``reset_password``), spent once, alive ``password_reset_seconds`` (20 minutes), and
  dead as soon as the password changes by any path (``created_at`` before
  ``password_changed_at``) or another reset completes.
- Completing a reset goes through the password policy (breached corpus included), ends
  every session and every refresh and access token, and mails a notice. It signs nobody
  in and never touches second factors: the next sign-in asks for them as before.
- The request does the same work whether or not the account exists (one look-up, one
  count, one token drawn, one audit row) and sends its mail only after the answer has
  gone (``MailQueue``), so neither the message nor its timing tells.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idp.accounts.emails import normalize_email
from idp.accounts.mailed_links import find_link
from idp.accounts.password_change import PasswordChangeService
from idp.accounts.passwords import PasswordRejected
from idp.accounts.service import VERIFY_EMAIL, AccountService
from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import looks_like_secret, new_secret, sha256_hex
from idp.db import utcnow
from idp.errors import InvalidInput, InvalidToken
from idp.models import EmailToken, User
from idp.notify.queue import Composer
from idp.oauth.store import TokenStore

RESET_PASSWORD = "reset_password"

# Reset and verification mails per account per window, whoever asks and from wherever:
# the per-address limit (ip.reset) alone would let a botnet fill one person's inbox.
MAILS_PER_ACCOUNT = 3
MAIL_WINDOW = dt.timedelta(minutes=15)


def reset_link(issuer: str, secret: str) -> str:
    return f"{issuer}/reset/confirm?{urlencode({'token': secret})}"


def kill_reset_tokens(db: Session, user_ids: list[str]) -> None:
    """Every outstanding reset link of these accounts stops working."""
    db.execute(
        update(EmailToken)
        .where(EmailToken.user_id.in_(user_ids), EmailToken.purpose == RESET_PASSWORD, EmailToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


class PasswordResetService:
    def __init__(
        self,
        *,
        db: Session,
        accounts: AccountService,
        password_change: PasswordChangeService,
        tokens: TokenStore,
        audit: AuditService,
        mail: Composer,
        issuer: str,
        lifetime_seconds: int,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.password_change = password_change
        self.tokens = tokens
        self.audit = audit
        self.mail = mail
        self.issuer = issuer
        self.lifetime = dt.timedelta(seconds=lifetime_seconds)

    # ------------------------------------------------------------- the request
    def request(self, raw_email: str, *, ctx: RequestContext) -> None:
        """Mail a reset link when the address is a verified, active account; otherwise
        do the same work and send nothing. The caller answers the same either way."""
        secret = new_secret()  # drawn on every path: same work
        try:
            email: str | None = normalize_email(raw_email)
        except InvalidInput:
            email = None  # not an address: nobody to mail, but the same queries below
        user = self.accounts.by_email(email or "")
        recent = self._recent_mails(user.id if user is not None else "")
        if user is None:
            outcome = "unknown_account" if email else "not_an_address"
        elif not user.active:
            outcome = "disabled"
        elif recent >= MAILS_PER_ACCOUNT:
            outcome = "suppressed"
        elif not user.email_verified:
            outcome = "verification_sent"
            self.accounts.send_verification(user, mail=self.mail)
        else:
            outcome = "sent"
            now = utcnow()
            self.db.add(
                EmailToken(
                    purpose=RESET_PASSWORD,
                    user_id=user.id,
                    email=user.email,
                    token_hash=sha256_hex(secret),
                    created_at=now,
                    expires_at=now + self.lifetime,
                )
            )
            # The stored address, never the request's text.
            self.mail.send(
                "password_reset",
                to=user.email,
                subject="Reset your password",
                link=reset_link(self.issuer, secret),
                minutes=int(self.lifetime.total_seconds() // 60),
                ip=ctx.ip or "unknown",
                reset_url=f"{self.issuer}/reset",
            )
        self.audit.record(
            "password.reset_requested", ctx=ctx, user_id=user.id if user is not None else None, outcome=outcome,
            email=email if user is None else None,
        )

    def _recent_mails(self, user_id: str) -> int:
        since = utcnow() - MAIL_WINDOW
        return self.db.scalar(
            select(func.count(EmailToken.id)).where(
                EmailToken.user_id == user_id,
                EmailToken.purpose.in_((RESET_PASSWORD, VERIFY_EMAIL)),
                EmailToken.created_at > since,
            )
        ) or 0

    # ------------------------------------------------------------ the link
    def check(self, token: object, *, ctx: RequestContext) -> User:
        """The account a live link is for; nothing is spent (GET: mail scanners fetch links)."""
        return self._live(token, ctx=ctx)[1]

    def complete(self, token: object, new_password: str, *, ctx: RequestContext) -> User:
        """Spend the link and set the new password. InvalidToken or PasswordRejected
        otherwise; a rejected password leaves the link usable for a second try."""
        record, user = self._live(token, ctx=ctx)
        # Claimed with a conditional update: of two concurrent submissions, one wins.
        claimed = self.db.execute(
            update(EmailToken)
            .where(EmailToken.id == record.id, EmailToken.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            self.audit.record("password.reset_failed", ctx=ctx, user_id=user.id, reason="used")
            raise InvalidToken(detail="reset link already used")
        try:
            self.password_change.set_new_password(user, new_password, ctx=ctx, event="password.reset")
        except PasswordRejected:
            # Not spent: the person chooses another password with the same link.
            self.db.execute(
                update(EmailToken).where(EmailToken.id == record.id).values(used_at=None)
                .execution_options(synchronize_session=False)
            )
            raise
        kill_reset_tokens(self.db, [user.id])
        # Sessions ended above take their tokens with them; tokens issued without a session
        # (or whose session is long gone) are revoked here.
        revoked = self.tokens.revoke_for_user(user.id)
        self.audit.record("password.reset_link_used", ctx=ctx, user_id=user.id, tokens_revoked=revoked)
        self.mail.send(
            "password_reset_done",
            to=user.email,
            subject="Your password was changed",
            when=utcnow().strftime("%d %B %Y, %H:%M UTC"),
            ip=ctx.ip or "unknown",
            reset_url=f"{self.issuer}/reset",
        )
        return user

    def _live(self, token: object, *, ctx: RequestContext) -> tuple[EmailToken, User]:
        if not isinstance(token, str) or not looks_like_secret(token):
            raise InvalidToken()
        record, user, reason = find_link(self.db, token, RESET_PASSWORD, also=_address_changed)
        if reason is not None:
            self.audit.record("password.reset_failed", ctx=ctx, user_id=user.id if user else None, reason=reason)
            raise InvalidToken(detail=f"reset link {reason}")
        assert record is not None and user is not None
        return record, user


def _address_changed(record: EmailToken, user: User) -> str | None:
    # Mailed to an address the account no longer has: the link is not that mailbox's.
    return "address_changed" if user.email != record.email or not user.email_verified else None
