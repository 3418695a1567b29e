"""The operator's levers on one account: disable, enable, unlock, end sessions, admin rights.

One code path for ``idp users ...`` and the admin API (idp/admin). No HTTP in here.
Every change is audited with who made it: ``actor`` is the acting admin's user id over
the API, None from the CLI (the operator at the console; the context says ``idp-cli``).

Disabling is the account's kill switch (DESIGN section 1, issue 7): ``disabled_at`` is
set, every SSO session ends (which revokes what the sessions led to and tells relying
parties by back-channel logout, Services._revoke_tokens_of_sessions), and every refresh
and access token of the account is revoked, including any not tied to a session. Sign-in
then refuses the account like a wrong password (AccountService.authenticate, passkey
sign-in, mailed links and resets all check ``User.active``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.accounts.emails import normalize_email
from idp.audit import AuditService
from idp.context import RequestContext
from idp.db import utcnow
from idp.errors import IdpError, InvalidInput, NotFound
from idp.models import (
    IssuedAccessToken,
    RecoveryCode,
    RefreshToken,
    SsoSession,
    TotpAuthenticator,
    User,
    WebAuthnCredential,
)
from idp.oauth.store import TokenStore
from idp.sessions import SessionService

if TYPE_CHECKING:
    from idp.protection.attack import AttackProtection

MAX_USER_ID = 64


class Conflict(IdpError):
    """The action contradicts the account's state or the caller's own (409)."""

    status = 409
    code = "conflict"
    public_message = "That is not possible for this account."


@dataclass(frozen=True)
class Outcome:
    """What an action did, for the CLI's line and the API's JSON."""

    user_id: str
    changed: bool
    sessions_ended: int = 0
    tokens_revoked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.user_id, "changed": self.changed, "sessions_ended": self.sessions_ended,
                "tokens_revoked": self.tokens_revoked}


def iso(moment: dt.datetime | None) -> str | None:
    """UTC, second precision, ``Z``: how the CLI and the API print a time."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class AccountStatusService:
    def __init__(
        self,
        *,
        db: Session,
        sessions: SessionService,
        tokens: TokenStore,
        audit: AuditService,
        attack: Callable[[], AttackProtection],
    ) -> None:
        self.db = db
        self.sessions = sessions
        self.tokens = tokens
        self.audit = audit
        # Built on first use: disabling an account from the CLI must not need Redis.
        self._attack = attack

    # ------------------------------------------------------------------ lookup
    def find(self, *, email: str | None = None, user_id: object = None) -> User:
        """The account by email (normalised as at sign-in) or by id; NotFound otherwise."""
        if email is not None:
            address = normalize_email(email)
            user = self.db.scalar(select(User).where(User.email == address))
            if user is None:
                raise NotFound(f"no account for {address}")
            return user
        if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID:
            raise NotFound("no such account")
        user = self.db.get(User, user_id)
        if user is None:
            raise NotFound("no such account")
        return user

    def describe(self, user: User) -> dict[str, Any]:
        """The account as an operator sees it: state and a factor summary, never a hash,
        secret, code or credential id."""
        totp = self.db.scalar(
            select(func.count()).select_from(TotpAuthenticator)
            .where(TotpAuthenticator.user_id == user.id, TotpAuthenticator.confirmed_at.is_not(None))
        ) or 0
        passkeys = self.db.scalar(
            select(func.count()).select_from(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id)
        ) or 0
        recovery_left = self.db.scalar(
            select(func.count()).select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        ) or 0
        # Every sign-in starts a session; max() keeps the column's type (aware UTC).
        last_sign_in = self.db.scalar(select(func.max(SsoSession.created_at)).where(SsoSession.user_id == user.id))
        return {
            "id": user.id,
            "email": user.email,
            "verified": user.email_verified,
            "disabled": not user.active,
            "disabled_at": iso(user.disabled_at),
            "is_admin": bool(user.is_admin),
            "password_set": user.password_hash is not None,
            "must_change_password": bool(user.must_change_password),
            "factors": {"totp": int(totp), "passkeys": int(passkeys), "recovery_codes_left": int(recovery_left)},
            "active_sessions": len(self.sessions.active_for_user(user.id)),
            "created": iso(user.created_at),
            "last_sign_in": iso(last_sign_in),
        }

    # ------------------------------------------------------------------ actions
    def disable(self, user: User, *, actor: str | None, ctx: RequestContext | None = None) -> Outcome:
        if actor is not None and actor == user.id:
            raise Conflict("An administrator cannot disable their own account.")
        ctx = ctx or RequestContext.system()
        changed = user.disabled_at is None
        if changed:
            user.disabled_at = utcnow()
        # Also when already disabled: a repeated disable still sweeps anything left live.
        live = self._live_tokens(user.id)
        ended = self.sessions.end_all_for_user(user.id, reason="disabled", ctx=ctx)
        self.tokens.revoke_for_user(user.id)
        revoked = live - self._live_tokens(user.id)
        self.audit.record("account.disabled", ctx=ctx, user_id=user.id, actor=actor, changed=changed,
                          sessions_ended=ended, tokens_revoked=revoked)
        return Outcome(user.id, changed, ended, revoked)

    def enable(self, user: User, *, actor: str | None, ctx: RequestContext | None = None) -> Outcome:
        changed = user.disabled_at is not None
        user.disabled_at = None
        self.audit.record("account.enabled", ctx=ctx or RequestContext.system(), user_id=user.id, actor=actor,
                          changed=changed)
        return Outcome(user.id, changed)

    def unlock(self, user: User, *, actor: str | None, ctx: RequestContext | None = None) -> Outcome:
        """End the attack-protection blocks on the account (ip_user.login from every
        address, and the user.login count), as a password reset does. The ip.stuffing
        throttle belongs to an address, not an account, and stays."""
        self._attack().account_reset(user.email)
        self.audit.record("account.unlocked", ctx=ctx or RequestContext.system(), user_id=user.id, actor=actor)
        return Outcome(user.id, True)

    def end_sessions(self, user: User, *, actor: str | None, ctx: RequestContext | None = None) -> Outcome:
        """Sign the account out everywhere: sessions, and every refresh and access token."""
        ctx = ctx or RequestContext.system()
        live = self._live_tokens(user.id)
        ended = self.sessions.end_all_for_user(user.id, reason="ended_by_admin", ctx=ctx)
        self.tokens.revoke_for_user(user.id)
        revoked = live - self._live_tokens(user.id)
        self.audit.record("account.sessions_ended", ctx=ctx, user_id=user.id, actor=actor, sessions_ended=ended,
                          tokens_revoked=revoked)
        return Outcome(user.id, bool(ended or revoked), ended, revoked)

    def set_admin(self, user: User, admin: bool, *, actor: str | None, ctx: RequestContext | None = None) -> Outcome:
        """Grant or revoke the right to hold admin-API scopes. The API checks it on every
        request, so a revocation bites at once, whatever tokens are still out."""
        if actor is not None and actor == user.id and not admin:
            raise Conflict("An administrator cannot revoke their own rights.")
        if admin and not user.active:
            raise InvalidInput("a disabled account cannot be made an administrator")
        changed = bool(user.is_admin) != admin
        user.is_admin = admin
        self.audit.record("account.admin_granted" if admin else "account.admin_revoked",
                          ctx=ctx or RequestContext.system(), user_id=user.id, actor=actor, changed=changed)
        return Outcome(user.id, changed)

    def _live_tokens(self, user_id: str) -> int:
        """Unrevoked refresh and access tokens: what an action reports it switched off
        (session ends revoke some of them through their own hook)."""
        refresh = self.db.scalar(select(func.count()).select_from(RefreshToken).where(
            RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))) or 0
        access = self.db.scalar(select(func.count()).select_from(IssuedAccessToken).where(
            IssuedAccessToken.user_id == user_id, IssuedAccessToken.revoked_at.is_(None))) or 0
        return int(refresh) + int(access)
