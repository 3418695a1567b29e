"""Authorization codes, refresh tokens and issued access-token ids: storage and the
revocation cascades between them. No Flask, no Authlib: the grants call this.

- A code is consumed atomically by its first redemption (RFC 6749 §4.1.2); a second
  redemption revokes every token issued from it (RFC 6749 §10.5, RFC 9700 §4.5).
- A refresh token is rotated at every use; presenting a rotated one revokes its whole
  family and writes ``oauth.refresh_reused`` (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import new_secret, sha256_hex
from idp.db import random_id, utcnow
from idp.models import AuthorizationCode, IssuedAccessToken, RefreshToken

# RFC 9700 §4.5 / OAuth 2.1 §4.1.2: codes live seconds, not the 10 minutes 6749 allows.
CODE_SECONDS = 60
# A refresh-token family ends this long after the code it came from; rotation does not extend it.
REFRESH_SECONDS = 30 * 24 * 60 * 60
MAX_TOKEN_LENGTH = 512


class ReplayDetected(Exception):
    """A one-time credential was presented again; what it led to has been revoked."""


class TokenStore:
    def __init__(self, *, db: Session, audit: AuditService) -> None:
        self.db = db
        self.audit = audit

    # ------------------------------------------------------------ codes
    def save_code(
        self,
        code: str,
        *,
        client_id: str,
        user_id: str,
        session_id: str | None,
        redirect_uri: str,
        scope: str,
        nonce: str | None,
        code_challenge: str,
        code_challenge_method: str,
        auth_time: dt.datetime,
        amr: list[str],
        acr: str,
        resource: list[str] | None = None,
    ) -> AuthorizationCode:
        now = utcnow()
        row = AuthorizationCode(
            code_hash=sha256_hex(code),
            client_id=client_id,
            user_id=user_id,
            session_id=session_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=nonce,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            resource=list(resource or []),
            auth_time=auth_time,
            amr=list(amr),
            acr=acr,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=CODE_SECONDS),
        )
        self.db.add(row)
        self.db.flush()
        return row

    def nonce_used(self, client_id: str, nonce: str) -> bool:
        stmt = select(AuthorizationCode.id).where(
            AuthorizationCode.client_id == client_id, AuthorizationCode.nonce == nonce
        )
        return self.db.scalar(stmt.limit(1)) is not None

    def redeem_code(self, code: object, *, client_id: str, ctx: RequestContext | None) -> AuthorizationCode | None:
        """Consume a code for ``client_id``. None when unknown, another client's, or
        expired; ReplayDetected (after revoking its tokens) when already consumed."""
        if not isinstance(code, str) or not code or len(code) > MAX_TOKEN_LENGTH:
            return None
        row = self.db.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == sha256_hex(code)))
        if row is None or row.client_id != client_id:
            return None
        now = utcnow()
        if row.used_at is None and now >= row.expires_at:
            return None
        if not self._claim_once(row, now):
            count = self.revoke_from_code(row.id)
            self.audit.record(
                "oauth.code_replayed", ctx=ctx, user_id=row.user_id, session_id=row.session_id,
                client_id=client_id, code_id=row.id, revoked=count,
            )
            raise ReplayDetected(row.id)
        return row

    def _claim_once(self, row: AuthorizationCode | RefreshToken, now: dt.datetime, *conditions: Any) -> bool:
        """Consume-once, atomically: one UPDATE that only an unused row matches, so of two
        concurrent redemptions exactly one wins (RFC 6749 section 4.1.2, RFC 9700 section 4.14).
        The row object is told the new value without a second UPDATE at flush."""
        model = type(row)
        claimed = self.db.execute(
            update(model)
            .where(model.id == row.id, model.used_at.is_(None), *conditions)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed == 1:
            set_committed_value(row, "used_at", now)
        return claimed == 1

    def revoke_from_code(self, code_id: str) -> int:
        families = set(self.db.scalars(select(RefreshToken.family_id).where(RefreshToken.code_id == code_id)))
        count = self._revoke_access(or_(IssuedAccessToken.code_id == code_id, IssuedAccessToken.family_id.in_(families)))
        for family in families:
            count += self._revoke_family_rows(family)
        return count

    # ------------------------------------------------------------ access tokens
    def record_access_token(
        self,
        *,
        jti: str,
        client_id: str,
        user_id: str | None,
        session_id: str | None,
        code_id: str | None,
        family_id: str | None,
        issued_at: dt.datetime,
        expires_at: dt.datetime,
    ) -> None:
        self.db.add(
            IssuedAccessToken(
                jti=jti, client_id=client_id, user_id=user_id, session_id=session_id, code_id=code_id,
                family_id=family_id, issued_at=issued_at, expires_at=expires_at,
            )
        )

    def access_token(self, jti: object) -> IssuedAccessToken | None:
        """The record of a live (unrevoked, unexpired) access token."""
        if not isinstance(jti, str) or not jti or len(jti) > 64:
            return None
        row = self.db.get(IssuedAccessToken, jti)
        if row is None or row.revoked_at is not None or utcnow() >= row.expires_at:
            return None
        return row

    def revoke_access_token(self, jti: str) -> int:
        return self._revoke_access(IssuedAccessToken.jti == jti)

    # ------------------------------------------------------------ refresh tokens
    def issue_refresh(
        self,
        *,
        client_id: str,
        user_id: str,
        session_id: str | None,
        code_id: str | None,
        family_id: str | None,
        scope: str,
        auth_time: dt.datetime,
        amr: list[str],
        acr: str,
        expires_at: dt.datetime | None = None,
        resource: list[str] | None = None,
    ) -> tuple[RefreshToken, str]:
        secret = new_secret()
        now = utcnow()
        row = RefreshToken(
            token_hash=sha256_hex(secret),
            family_id=family_id or random_id(),
            client_id=client_id,
            user_id=user_id,
            session_id=session_id,
            code_id=code_id,
            scope=scope,
            resource=list(resource or []),
            auth_time=auth_time,
            amr=list(amr),
            acr=acr,
            created_at=now,
            expires_at=expires_at or now + dt.timedelta(seconds=REFRESH_SECONDS),
        )
        self.db.add(row)
        self.db.flush()
        return row, secret

    def find_refresh(self, token: object) -> RefreshToken | None:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self.db.scalar(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(token)))

    def refresh_active(self, row: RefreshToken) -> bool:
        return row.used_at is None and row.revoked_at is None and utcnow() < row.expires_at

    def use_refresh(self, token: object, *, client_id: str, ctx: RequestContext | None) -> RefreshToken | None:
        """Consume a refresh token for rotation. None when unknown, another client's,
        revoked or expired; ReplayDetected (after revoking the family) when rotated before."""
        row = self.find_refresh(token)
        if row is None or row.client_id != client_id or row.revoked_at is not None:
            return None
        now = utcnow()
        if row.used_at is None and now >= row.expires_at:
            return None
        if not self._claim_once(row, now, RefreshToken.revoked_at.is_(None)):
            count = self.revoke_family(row.family_id)
            self.audit.record(
                "oauth.refresh_reused", ctx=ctx, user_id=row.user_id, session_id=row.session_id,
                client_id=client_id, family_id=row.family_id, revoked=count,
            )
            raise ReplayDetected(row.family_id)
        return row

    def revoke_family(self, family_id: str) -> int:
        count = self._revoke_family_rows(family_id)
        return count + self._revoke_access(IssuedAccessToken.family_id == family_id)

    # ------------------------------------------------------------ cascades
    def revoke_for_session(self, session_id: str) -> int:
        """Logout: every token that a sign-in session led to."""
        families = set(self.db.scalars(select(RefreshToken.family_id).where(RefreshToken.session_id == session_id)))
        count = self._revoke_access(IssuedAccessToken.session_id == session_id)
        for family in families:
            count += self.revoke_family(family)
        return count

    def revoke_for_user_client(self, user_id: str, client_id: str) -> int:
        """Consent withdrawn: the client loses every token it holds for the user."""
        families = set(
            self.db.scalars(
                select(RefreshToken.family_id).where(RefreshToken.user_id == user_id, RefreshToken.client_id == client_id)
            )
        )
        count = self._revoke_access(
            (IssuedAccessToken.user_id == user_id) & (IssuedAccessToken.client_id == client_id)
        )
        for family in families:
            count += self.revoke_family(family)
        return count

    def revoke_for_user(self, user_id: str) -> int:
        """Password reset, account disabled: every refresh and access token of the user."""
        count = self.db.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount or 0
        return count + self._revoke_access(IssuedAccessToken.user_id == user_id)

    def _revoke_family_rows(self, family_id: str) -> int:
        return self.db.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount or 0

    def _revoke_access(self, condition) -> int:  # type: ignore[no-untyped-def]
        return self.db.execute(
            update(IssuedAccessToken)
            .where(condition, IssuedAccessToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount or 0


def scope_set(scope: str | Iterable[str] | None) -> set[str]:
    if scope is None:
        return set()
    return set(scope.split() if isinstance(scope, str) else scope)
