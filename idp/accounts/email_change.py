"""Changing the sign-in address: a link to the new address, notices to the old one (issue 7).

The address is where every recovery mail goes, so changing it is taking the account's
recovery over. The rules that keep an attacker who rides an unattended session (or who
holds the password and got past the second factor once) from doing that quietly:

- The request needs the current password again (one argon2 verification), on top of the
  signed-in, second-factor session that ``login_required`` already demands.
- The new address is normalised exactly as at sign-up (idp/accounts/emails.py) and has
  to prove itself: a one-time link (EmailToken purpose ``email_change``, 256 random bits
  stored as SHA-256, one hour, single use, bound to the account) goes to it. Opening the
  link spends nothing (mail scanners fetch links); the confirm button does.
- The old address hears of the request at once and of the change when it happens; the
  notice says what to do if it was not them, and doing it (changing the password) kills
  the pending link: a link dies with the password it was requested under.
- No enumeration: when the new address already belongs to another account, the answer
  and the work are those of a success (one token row, one old-address notice, mail after
  the response), and the new address is told someone tried to use it, with no link.
- On confirmation the uniqueness is checked again, the address changes and counts as
  verified, every other link mailed for the account dies (reset links sent to the old
  address above all) and the old address gets a notice. Addresses reach the audit log
  masked only (``n***@example.com``): the log is read by operators and kept for years.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.accounts.emails import normalize_email
from idp.accounts.mailed_links import find_link
from idp.accounts.passwords import MAX_LENGTH, normalize_password
from idp.accounts.password_change import WrongCurrentPassword
from idp.accounts.service import AccountService
from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import looks_like_secret, new_secret, sha256_hex
from idp.db import utcnow
from idp.errors import IdpError, InvalidInput, InvalidToken
from idp.models import EmailToken, User
from idp.notify.addresses import mask_address
from idp.notify.queue import Composer

EMAIL_CHANGE = "email_change"
LIFETIME_SECONDS = 60 * 60
# Requests per account per window, whatever their outcome: each one mails two inboxes,
# one of them a stranger's, and the per-address limit (ip.reset) does not see a botnet.
REQUESTS_PER_ACCOUNT = 3
REQUEST_WINDOW = dt.timedelta(minutes=15)

BAD_LINK = ("This email change link is invalid, was already used, or has expired. Sign in and ask for the "
            "change again from your account page.")


class NoPasswordToConfirm(InvalidInput):
    public_message = ("Your account has no password at the moment (an administrator reset it). Choose a new "
                      "password with the link we mailed you, then change your address.")


class SameAddress(InvalidInput):
    public_message = "That is already the address of your account."


class TooManyRequests(IdpError):
    status = 429
    code = "too_many_requests"
    public_message = ("You asked for several address changes in the last few minutes. Wait a quarter of an "
                      "hour, then try again.")


class AddressUnavailable(InvalidToken):
    public_message = ("This address now belongs to another account, so it cannot become the address of this one. "
                      "Nothing was changed.")


@dataclass(frozen=True)
class PendingChange:
    user: User
    new_email: str


def confirm_link(issuer: str, secret: str) -> str:
    return f"{issuer}/account/email/confirm?{urlencode({'token': secret})}"


class EmailChangeService:
    def __init__(
        self,
        *,
        db: Session,
        accounts: AccountService,
        audit: AuditService,
        mail: Composer,
        issuer: str,
        lifetime_seconds: int = LIFETIME_SECONDS,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.audit = audit
        self.mail = mail
        self.issuer = issuer
        self.lifetime = dt.timedelta(seconds=lifetime_seconds)

    # ------------------------------------------------------------- the request
    def request(self, user: User, current_password: str, raw_new_email: str, *, ctx: RequestContext,
                mail: Composer | None = None) -> str:
        """Mail a confirmation link to the new address (or, when another account has it,
        a warning instead) and a notice to the current one, through ``mail`` when the
        caller sends after committing (a MailQueue). Returns the normalised new address,
        which the caller shows whatever happened to it."""
        mail = mail or self.mail
        candidate = normalize_password(current_password or "")
        # One argon2 verification whatever the input, so an oversized value costs the same.
        ok = len(candidate) <= MAX_LENGTH and self.accounts.hasher.verify(user.password_hash, candidate)
        if user.password_hash is None:
            self.audit.record("email_change.failed", ctx=ctx, user_id=user.id, reason="no_password")
            raise NoPasswordToConfirm()
        if not ok:
            self.audit.record("email_change.failed", ctx=ctx, user_id=user.id, reason="wrong_current_password")
            raise WrongCurrentPassword()
        new_email = normalize_email(raw_new_email)
        if new_email == user.email:
            raise SameAddress()
        if self._recent_requests(user.id) >= REQUESTS_PER_ACCOUNT:
            self.audit.record("email_change.failed", ctx=ctx, user_id=user.id, reason="too_many_requests")
            raise TooManyRequests()

        now = utcnow()
        secret = new_secret()  # drawn on both paths below: the same work
        self._kill_pending(user.id, now)  # the latest request is the only one that counts
        owner = self.accounts.by_email(new_email)
        taken = owner is not None and owner.id != user.id
        self.db.add(
            EmailToken(
                purpose=EMAIL_CHANGE,
                user_id=user.id,
                email=new_email,
                token_hash=sha256_hex(secret),
                created_at=now,
                expires_at=now + self.lifetime,
                # Never mailed when the address is taken: born spent, it only counts
                # towards the per-account cap.
                used_at=now if taken else None,
            )
        )
        minutes = int(self.lifetime.total_seconds() // 60)
        if taken:
            mail.send("email_change_address_taken", to=new_email, subject="Someone tried to use your address",
                      signin_url=f"{self.issuer}/login", reset_url=f"{self.issuer}/reset")
        else:
            mail.send("email_change_confirm", to=new_email, subject="Confirm your new email address",
                      link=confirm_link(self.issuer, secret), minutes=minutes, new_email=new_email)
        mail.send("email_change_requested", to=user.email, subject="A change of your email address was requested",
                  new_email_hint=mask_address(new_email), minutes=minutes, ip=ctx.ip or "unknown",
                  when=now.strftime("%d %B %Y, %H:%M UTC"), password_url=f"{self.issuer}/account/password",
                  account_url=f"{self.issuer}/account")
        self.audit.record("email_change.requested", ctx=ctx, user_id=user.id,
                          outcome="address_taken" if taken else "link_sent", new_email=mask_address(new_email))
        return new_email

    def _recent_requests(self, user_id: str) -> int:
        return self.db.scalar(
            select(func.count(EmailToken.id)).where(
                EmailToken.user_id == user_id, EmailToken.purpose == EMAIL_CHANGE,
                EmailToken.created_at > utcnow() - REQUEST_WINDOW,
            )
        ) or 0

    def _kill_pending(self, user_id: str, now: dt.datetime) -> None:
        self.db.execute(
            update(EmailToken)
            .where(EmailToken.user_id == user_id, EmailToken.purpose == EMAIL_CHANGE, EmailToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )

    # ------------------------------------------------------------------ the link
    def check(self, token: object, *, ctx: RequestContext) -> PendingChange:
        """What a live link would change; nothing is spent (GET: mail scanners fetch links)."""
        record, user = self._live(token, ctx=ctx)
        return PendingChange(user=user, new_email=record.email)

    def confirm(self, token: object, *, ctx: RequestContext, mail: Composer | None = None) -> PendingChange:
        """Spend the link and change the address. InvalidToken (a subclass for an address
        taken since) otherwise. The notice to the old address goes through ``mail``."""
        record, user = self._live(token, ctx=ctx)
        now = utcnow()
        # Claimed with a conditional update: of two concurrent confirmations, one wins.
        claimed = self.db.execute(
            update(EmailToken)
            .where(EmailToken.id == record.id, EmailToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            self.audit.record("email_change.link_failed", ctx=ctx, user_id=user.id, reason="used")
            raise InvalidToken(BAD_LINK, detail="email change link already used")
        new_email, old_email = record.email, user.email
        owner = self.accounts.by_email(new_email)
        if owner is not None and owner.id != user.id:
            self.audit.record("email_change.link_failed", ctx=ctx, user_id=user.id, reason="address_taken")
            raise AddressUnavailable(detail="email change: address taken since the request")
        user.email = new_email
        user.email_verified_at = now  # the link just proved the mailbox
        try:
            self.db.flush()
        except IntegrityError:
            # Another account took the address between the check above and this write.
            self.db.rollback()
            self.audit.record("email_change.link_failed", ctx=ctx, user_id=user.id, reason="address_taken")
            raise AddressUnavailable(detail="email change: address taken concurrently") from None
        # Every other link mailed for this account dies, reset links to the old address
        # above all: they would hand the account back to whoever reads that mailbox.
        self.db.execute(
            update(EmailToken)
            .where(EmailToken.user_id == user.id, EmailToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        self.audit.record("email.changed", ctx=ctx, user_id=user.id, old_email=mask_address(old_email),
                          new_email=mask_address(new_email))
        (mail or self.mail).send("email_change_done", to=old_email, subject="Your email address was changed",
                                 new_email_hint=mask_address(new_email), when=now.strftime("%d %B %Y, %H:%M UTC"),
                                 ip=ctx.ip or "unknown")
        return PendingChange(user=user, new_email=new_email)

    def _live(self, token: object, *, ctx: RequestContext) -> tuple[EmailToken, User]:
        if not isinstance(token, str) or not looks_like_secret(token):
            raise InvalidToken(BAD_LINK)
        record, user, reason = find_link(self.db, token, EMAIL_CHANGE)
        if reason is not None:
            self.audit.record("email_change.link_failed", ctx=ctx, user_id=user.id if user else None, reason=reason)
            raise InvalidToken(BAD_LINK, detail=f"email change link {reason}")
        assert record is not None and user is not None
        return record, user
