"""Policy and step-up: what a session needs, what it has, and moving it up.

The gate (``idp/web/sso.py``) asks ``assurance.satisfies(acr_for(session.amr), needed)``;
this service decides ``needed`` (deployment baseline, raised by a client's ``acr``),
which of the user's methods can reach it, and raises a session when a factor verifies:
the factor's amr values are added to the *same* session, auth_time is refreshed and the
cookie secret is replaced (OWASP ASVS 5.0 V7.2: new session token on privilege change).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp import assurance
from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import new_secret, sha256_hex
from idp.db import utcnow
from idp.mfa.errors import FactorNotAllowed, ReauthRequired, TooManyAttempts
from idp.models import (
    AuditEvent,
    MfaSessionState,
    RecoveryCode,
    SsoSession,
    TotpAuthenticator,
    User,
    WebAuthnCredential,
)
from idp.sessions import SessionService

# Issue 4: five wrong codes in a row end the sign-in attempt (back to the password).
MAX_FAILURES_PER_SESSION = 5
# Across all sessions of one account: slows a password holder who keeps signing in again
# to guess codes, while a passkey (not a code) still works for the real user.
MAX_FAILURES_PER_USER = 10
USER_FAILURE_WINDOW = dt.timedelta(minutes=15)
# Removing a factor needs a second factor verified this recently (not the one removed).
REAUTH_WINDOW = dt.timedelta(minutes=10)

METHOD_TOTP = "totp"
METHOD_PASSKEY = "passkey"
METHOD_RECOVERY = "recovery"

AMR_FOR_METHOD = {
    METHOD_TOTP: [assurance.AMR_OTP],
    METHOD_RECOVERY: [assurance.AMR_OTP],
}


@dataclass(frozen=True, slots=True)
class Factors:
    totp: list[TotpAuthenticator]
    passkeys: list[WebAuthnCredential]
    recovery_remaining: int

    @property
    def any(self) -> bool:
        """Authenticators that can be used again and again (recovery codes are a fallback)."""
        return bool(self.totp or self.passkeys)

    @property
    def count(self) -> int:
        return len(self.totp) + len(self.passkeys)


def methods_reaching(needed: str, factors: Factors) -> list[str]:
    """Which of the user's methods lift a password session to `needed`."""
    methods = []
    if factors.passkeys:
        methods.append(METHOD_PASSKEY)  # pwd + hwk reaches every level we define
    if assurance.satisfies(assurance.ACR_MFA, needed):
        if factors.totp:
            methods.append(METHOD_TOTP)
        if factors.recovery_remaining:
            methods.append(METHOD_RECOVERY)
    return methods


def passkey_amr(user_verified: bool) -> list[str]:
    return [assurance.AMR_HARDWARE_KEY, assurance.AMR_USER_PRESENCE_VERIFIED] if user_verified else [
        assurance.AMR_HARDWARE_KEY
    ]


class StepUpService:
    def __init__(
        self,
        *,
        db: Session,
        audit: AuditService,
        sessions: SessionService,
        mfa_policy: str,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.audit = audit
        self.sessions = sessions
        self.mfa_policy = mfa_policy
        self.clock = clock

    # ----------------------------------------------------------------- levels
    @property
    def baseline(self) -> str:
        return assurance.baseline_acr(self.mfa_policy)

    def needed(self, requested: str | None) -> str:
        """The baseline, raised (never lowered) by a requested acr we know."""
        if requested in assurance.ACR_VALUES and assurance.rank(requested) > assurance.rank(self.baseline):
            return requested
        return self.baseline

    @staticmethod
    def session_acr(sso: SsoSession) -> str:
        return assurance.acr_for(sso.amr or [])

    def satisfied(self, sso: SsoSession, needed: str, *, max_age: int | None = None) -> bool:
        if not assurance.satisfies(self.session_acr(sso), needed):
            return False
        if max_age is not None and self.clock() - sso.auth_time > dt.timedelta(seconds=max_age):
            return False
        return True

    # ---------------------------------------------------------------- factors
    def factors(self, user: User) -> Factors:
        totp = list(
            self.db.scalars(
                select(TotpAuthenticator)
                .where(TotpAuthenticator.user_id == user.id, TotpAuthenticator.confirmed_at.is_not(None))
                .order_by(TotpAuthenticator.created_at)
            )
        )
        passkeys = list(
            self.db.scalars(
                select(WebAuthnCredential)
                .where(WebAuthnCredential.user_id == user.id)
                .order_by(WebAuthnCredential.created_at)
            )
        )
        remaining = self.db.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        return Factors(totp=totp, passkeys=passkeys, recovery_remaining=int(remaining or 0))

    def binding_allowed(self, sso: SsoSession, factors: Factors, *, has_proof: bool) -> bool:
        """Issue 4: a mailed proof in this browser always; and an account that already has
        a factor must also have used one in this session (a password + mailbox holder must
        not be able to slip a factor in beside the owner's)."""
        if not has_proof:
            return False
        return not factors.any or assurance.satisfies(self.session_acr(sso), assurance.ACR_MFA)

    def check_recent(self, sso: SsoSession, *, excluding: str | None = None) -> None:
        """A second factor other than `excluding` was verified in this session lately."""
        state = self._state(sso)
        fresh = state.last_factor_at is not None and self.clock() - state.last_factor_at <= REAUTH_WINDOW
        if not fresh or (excluding is not None and state.last_factor == excluding):
            raise ReauthRequired()

    def check_removal(self, sso: SsoSession, factors: Factors, factor_ref: str) -> None:
        self.check_recent(sso, excluding=factor_ref)
        if self.mfa_policy == "required" and factors.count <= 1:
            raise FactorNotAllowed("This is your only sign-in method besides the password. Add another one first.")

    # ----------------------------------------------------- session elevation
    def _state(self, sso: SsoSession) -> MfaSessionState:
        state = self.db.get(MfaSessionState, sso.id)
        if state is None:
            state = MfaSessionState(sso_session_id=sso.id, failures=0)
            self.db.add(state)
            self.db.flush()
        return state

    def mark_verified(self, sso: SsoSession, *, factor_ref: str) -> None:
        state = self._state(sso)
        state.failures = 0
        state.last_factor = factor_ref
        state.last_factor_at = self.clock()

    def elevate(self, sso: SsoSession, *, amr: list[str], factor_ref: str, ctx: RequestContext) -> str:
        """Add a verified factor to the session; returns the new cookie secret."""
        before = list(sso.amr or [])
        sso.amr = sorted(set(before) | set(amr))
        sso.auth_time = self.clock()
        secret = new_secret()
        sso.token_hash = sha256_hex(secret)
        self.mark_verified(sso, factor_ref=factor_ref)
        self.audit.record(
            "mfa.verified", ctx=ctx, user_id=sso.user_id, session_id=sso.id, factor=factor_ref,
            amr=sso.amr, acr=self.session_acr(sso),
        )
        return secret

    def check_throttle(self, user: User) -> None:
        """Per account, across sessions: checked before a code is even compared."""
        since = self.clock() - USER_FAILURE_WINDOW
        failures = self.db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.user_id == user.id, AuditEvent.event == "mfa.failed", AuditEvent.at > since)
        )
        if (failures or 0) >= MAX_FAILURES_PER_USER:
            self.audit.record("mfa.throttled", user_id=user.id)
            raise TooManyAttempts()

    def record_failure(self, sso: SsoSession, *, method: str, ctx: RequestContext) -> bool:
        """Count a wrong code; True when this was the fifth in a row and the session ended."""
        state = self._state(sso)
        state.failures += 1
        self.audit.record("mfa.failed", ctx=ctx, user_id=sso.user_id, session_id=sso.id, method=method,
                          failures=state.failures)
        if state.failures >= MAX_FAILURES_PER_SESSION:
            self.sessions.end(sso, reason="mfa_failed", ctx=ctx)
            return True
        return False
