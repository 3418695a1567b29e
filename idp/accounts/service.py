"""Sign-up, email verification and password sign-in. No HTTP in here.

Every public outcome that could tell an attacker whether an address has an account is
made identical: the same message, and the same work (one argon2 verification or hash,
one mail) on every path.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.accounts.emails import normalize_email
from idp.accounts.hashing import PasswordHasher
from idp.accounts.passwords import MAX_LENGTH, PasswordPolicy, normalize_password
from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import looks_like_secret, new_secret, sha256_hex
from idp.db import utcnow
from idp.errors import EmailNotVerified, InvalidCredentials, InvalidInput, InvalidToken
from idp.models import EmailToken, User
from idp.notify.messages import MailComposer
from idp.notify.queue import Composer

VERIFY_EMAIL = "verify_email"


class AccountService:
    def __init__(
        self,
        *,
        db: Session,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        audit: AuditService,
        mail: MailComposer,
        issuer: str,
        verification_seconds: int,
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.policy = policy
        self.audit = audit
        self.mail = mail
        self.issuer = issuer
        self.verification_ttl = dt.timedelta(seconds=verification_seconds)

    # ------------------------------------------------------------------ lookup
    def by_email(self, email: str) -> User | None:
        return self.db.scalar(select(User).where(User.email == email))

    def get(self, user_id: str) -> User | None:
        return self.db.get(User, user_id)

    # ----------------------------------------------------------------- sign-up
    def sign_up(self, raw_email: str, password: str, *, ctx: RequestContext) -> None:
        """Register, or tell the owner by mail; the caller shows one answer either way."""
        email = normalize_email(raw_email)
        normalized = self.policy.check(password, email=email)
        password_hash = self.hasher.hash(normalized)  # hashed on both paths: same cost
        existing = self.by_email(email)
        if existing is not None:
            self.audit.record("signup.existing_email", ctx=ctx, user_id=existing.id)
            self.mail.send("signup_existing", to=existing.email, subject="Someone tried to sign up with your address",
                           signin_url=f"{self.issuer}/login")
            return
        user = User(email=email, password_hash=password_hash, password_changed_at=utcnow())
        self.db.add(user)
        try:
            self.db.flush()
        except IntegrityError:
            # A concurrent sign-up for the same address won the race: same public answer.
            self.db.rollback()
            return
        self.audit.record("signup", ctx=ctx, user_id=user.id)
        self.send_verification(user)

    def create_by_operator(self, raw_email: str, password: str | None, *, verified: bool) -> User:
        email = normalize_email(raw_email)
        if self.by_email(email) is not None:
            raise InvalidInput(f"an account for {email} already exists")
        user = User(email=email, email_verified_at=utcnow() if verified else None)
        if password is not None:
            user.password_hash = self.hasher.hash(self.policy.check(password, email=email))
            user.password_changed_at = utcnow()
        self.db.add(user)
        self.db.flush()
        self.audit.record("user.created_by_operator", ctx=RequestContext.system(), user_id=user.id, verified=verified)
        if not verified:
            self.send_verification(user)
        return user

    # ----------------------------------------------------- email verification
    def send_verification(self, user: User, *, mail: Composer | None = None) -> None:
        """Mail a verification link (through ``mail`` when the caller defers sending)."""
        secret = new_secret()
        self.db.add(
            EmailToken(
                purpose=VERIFY_EMAIL,
                user_id=user.id,
                email=user.email,
                token_hash=sha256_hex(secret),
                expires_at=utcnow() + self.verification_ttl,
            )
        )
        link = f"{self.issuer}/verify-email?{urlencode({'token': secret})}"
        hours = int(self.verification_ttl.total_seconds() // 3600)
        (mail or self.mail).send("verify_email", to=user.email, subject="Confirm your email address", link=link,
                                 hours=hours)

    def verify_email(self, token: str, *, ctx: RequestContext) -> User:
        if not looks_like_secret(token):
            raise InvalidToken()
        record = self.db.scalar(
            select(EmailToken).where(EmailToken.token_hash == sha256_hex(token), EmailToken.purpose == VERIFY_EMAIL)
        )
        if record is None or record.used_at is not None or utcnow() >= record.expires_at:
            self.audit.record("email.verify_failed", ctx=ctx, user_id=record.user_id if record else None)
            raise InvalidToken()
        user = self.db.get(User, record.user_id)
        # A link for an address the account no longer has proves nothing.
        if user is None or user.email != record.email:
            raise InvalidToken()
        record.used_at = utcnow()
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
            self.audit.record("email.verified", ctx=ctx, user_id=user.id)
        return user

    # ----------------------------------------------------------------- sign-in
    def authenticate(self, raw_email: str, password: str, *, ctx: RequestContext) -> User:
        """The account for a correct email and password, or InvalidCredentials.

        Unknown account, wrong password, no usable password and disabled account all cost
        one argon2 verification and raise the same error; the audit log says which.
        """
        email = normalize_email(raw_email)
        if not password:
            raise InvalidInput("Enter your password.")
        candidate = normalize_password(password)
        if len(candidate) > MAX_LENGTH:
            raise InvalidInput(f"Passwords are at most {MAX_LENGTH} characters.")
        user = self.by_email(email)
        ok = self.hasher.verify(user.password_hash if user else None, candidate)
        reason = None
        if user is None:
            reason = "unknown_account"
        elif user.password_hash is None:
            reason = "no_password"
        elif not ok:
            reason = "wrong_password"
        elif not user.active:
            reason = "disabled"
        if reason is not None:
            self.audit.record("signin.failed", ctx=ctx, user_id=user.id if user else None, reason=reason,
                              email=None if user else email)
            raise InvalidCredentials()
        assert user is not None and user.password_hash is not None
        if self.hasher.needs_rehash(user.password_hash):
            user.password_hash = self.hasher.hash(candidate)
            self.audit.record("password.rehashed", ctx=ctx, user_id=user.id)
        if not user.email_verified:
            self.audit.record("signin.unverified_email", ctx=ctx, user_id=user.id)
            self.send_verification(user)
            raise EmailNotVerified()
        # Seam for the breached-password corpus: a correct password that has since appeared
        # in a breach still signs in, but only into a forced change (issue: breached passwords).
        if self.policy.breached.is_breached(candidate) and not user.must_change_password:
            user.must_change_password = True
            self.audit.record("password.found_in_breach", ctx=ctx, user_id=user.id)
        self.audit.record("signin.password_ok", ctx=ctx, user_id=user.id)
        return user
