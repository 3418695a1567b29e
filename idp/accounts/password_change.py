"""Changing a password: by the signed-in user, or (``set_new_password``) by a reset.

NIST SP 800-63B-4 3.1.1.2: the new password goes through the same policy as at sign-up
(length, context words, breached corpus); the change ends every other session, because
the usual reason to change a password is that someone else may know it. Clearing
``must_change_password`` here is what lets a forced change (breach found at sign-in,
operator's force-reset) end.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.accounts.hashing import PasswordHasher
from idp.accounts.passwords import MAX_LENGTH, PasswordPolicy, PasswordRejected, normalize_password
from idp.audit import AuditService
from idp.context import RequestContext
from idp.db import utcnow
from idp.errors import InvalidInput
from idp.models import User
from idp.sessions import SessionService


class WrongCurrentPassword(InvalidInput):
    public_message = "Your current password is not correct. Type it again."


class PasswordChangeService:
    def __init__(
        self,
        *,
        db: Session,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        audit: AuditService,
        sessions: SessionService,
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.policy = policy
        self.audit = audit
        self.sessions = sessions

    def change(
        self, user: User, current_password: str, new_password: str, *, ctx: RequestContext, keep_session_id: str | None
    ) -> None:
        """The signed-in user's change: proves the current password first."""
        current = normalize_password(current_password or "")
        # One argon2 verification whatever the input, so an oversized value costs the same.
        ok = len(current) <= MAX_LENGTH and self.hasher.verify(user.password_hash, current)
        if not ok:
            self.audit.record("password.change_failed", ctx=ctx, user_id=user.id, reason="wrong_current_password")
            raise WrongCurrentPassword()
        if normalize_password(new_password or "") == current:
            self.audit.record("password.change_failed", ctx=ctx, user_id=user.id, reason="same_password")
            raise PasswordRejected("Choose a new password: this one is the password you have now.")
        self.set_new_password(user, new_password, ctx=ctx, keep_session_id=keep_session_id)

    def set_new_password(
        self,
        user: User,
        new_password: str,
        *,
        ctx: RequestContext,
        keep_session_id: str | None = None,
        event: str = "password.changed",
    ) -> None:
        """Check, hash and store a new password, end the other sessions, audit ``event``.

        The seam for the reset flow: it has proved control of the mailbox instead of the
        current password, and calls this with ``event="password.reset"``.
        """
        try:
            value = self.policy.check(new_password, email=user.email)
        except PasswordRejected as error:
            self.audit.record("password.change_failed", ctx=ctx, user_id=user.id, reason="policy",
                              rule=type(error).__name__, message=error.public_message)
            raise
        forced = bool(user.must_change_password)
        user.password_hash = self.hasher.hash(value)
        user.password_changed_at = utcnow()
        user.must_change_password = False
        ended = self.sessions.end_all_for_user(user.id, reason="password_changed", ctx=ctx, keep=keep_session_id)
        self.audit.record(event, ctx=ctx, user_id=user.id, forced=forced, sessions_ended=ended)
