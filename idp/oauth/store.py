"""Authorization codes, refresh tokens and issued access-token ids: storage and the
revocation cascades between them. No Flask, no Authlib: the grants call this.

- A code is consumed atomically by its first redemption (RFC 6749 §4.1.2); a second
  redemption revokes every token issued from it (RFC 6749 §10.5, RFC 9700 §4.5).
- A refresh token is rotated at every use; presenting a rotated one revokes its whole
  family and writes ``oauth.refresh_reused`` (RFC 9700 §4.14.2).
- Access tokens issued to a person have a row (``oauth_access_tokens``): logout, a
  password reset, withdrawn consent or a replayed code revoke them by session, user,
  client or family, and back-channel logout finds a session's clients through them.
  Access tokens issued to a client (client_credentials) have no row until one is revoked
  (RFC 7009): then a row with ``revoked_at`` set is the deny-list entry for that ``jti``.
  Nothing else can revoke them (no session, no user), and writing a row per token was
  most of the cost of the grant (issue 3, done-when 4).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import new_secret, sha256_hex
from idp.db import random_id, utcnow
from idp.models import AuthorizationCode, IssuedAccessToken, RefreshToken, User

# RFC 9700 §4.5 / OAuth 2.1 §4.1.2: codes live seconds, not the 10 minutes 6749 allows.
CODE_SECONDS = 60
# A refresh-token family ends this long after the code it came from; rotation does not extend it.
REFRESH_SECONDS = 30 * 24 * 60 * 60
MAX_TOKEN_LENGTH = 512


class ReplayDetected(Exception):
    """A one-time credential was presented again; what it led to has been revoked."""


@dataclass(frozen=True)
class ClaimedRefresh:
    """A refresh token consumed for rotation: what the grant needs of its row, no more."""

    id: str
    family_id: str
    client_id: str
    user_id: str
    session_id: str | None
    code_id: str | None
    scope: str
    resource: list[str]
    auth_time: dt.datetime
    amr: list[str]
    acr: str
    expires_at: dt.datetime
    used_at: dt.datetime


@dataclass(frozen=True)
class IssuedRefresh:
    """A refresh-token row just written (the secret itself is returned beside it)."""

    id: str
    family_id: str
    token_hash: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class RefreshRecord:
    """A stored refresh token as introspection and revocation read it."""

    family_id: str
    client_id: str
    user_id: str
    scope: str
    resource: list[str]
    auth_time: dt.datetime
    acr: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class AccessTokenRecord:
    """The row of an access token, as introspection and userinfo read it."""

    user_id: str | None
    expires_at: dt.datetime
    revoked_at: dt.datetime | None


# The statements of the token and introspection endpoints, built once: constructing a
# SQLAlchemy statement per request cost more CPU than running it (issue 3). Core
# statements on the tables, with bound parameters; SQLAlchemy caches their SQL.
_refresh = RefreshToken.__table__
_access = IssuedAccessToken.__table__
_users = User.__table__

# Consume a live, unused refresh token of this client whose account is active, and read
# what the grant needs, in one round trip (RFC 9700 section 4.14.2: of two concurrent
# uses exactly one matches).
_CLAIM_REFRESH = (
    update(_refresh)
    .where(
        _refresh.c.token_hash == bindparam("p_hash"),
        _refresh.c.client_id == bindparam("p_client"),
        _refresh.c.used_at.is_(None),
        _refresh.c.revoked_at.is_(None),
        _refresh.c.expires_at > bindparam("p_now"),
        exists().where(_users.c.id == _refresh.c.user_id, _users.c.disabled_at.is_(None)),
    )
    .values(used_at=bindparam("p_used"))
    .returning(*(_refresh.c[name] for name in ClaimedRefresh.__dataclass_fields__ if name != "used_at"))
)
_REFRESH_STATE = select(
    _refresh.c.client_id, _refresh.c.used_at, _refresh.c.revoked_at, _refresh.c.family_id,
    _refresh.c.user_id, _refresh.c.session_id,
).where(_refresh.c.token_hash == bindparam("p_hash"))
_FIND_REFRESH = select(*(_refresh.c[name] for name in RefreshRecord.__dataclass_fields__)).where(
    _refresh.c.token_hash == bindparam("p_hash")
)
_INSERT_REFRESH = insert(_refresh)
_INSERT_ACCESS = insert(_access)
_ACCESS_RECORD = select(_access.c.user_id, _access.c.expires_at, _access.c.revoked_at).where(
    _access.c.jti == bindparam("p_jti")
)


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
        self.db.execute(_INSERT_ACCESS, {
            "jti": jti, "client_id": client_id, "user_id": user_id, "session_id": session_id, "code_id": code_id,
            "family_id": family_id, "issued_at": issued_at, "expires_at": expires_at, "revoked_at": None,
        })

    def access_token(self, jti: object) -> IssuedAccessToken | None:
        """The record of a live (unrevoked, unexpired) access token issued to a person.
        None for anything else, client_credentials tokens included (they have no row)."""
        if not isinstance(jti, str) or not jti or len(jti) > 64:
            return None
        row = self.db.get(IssuedAccessToken, jti)
        if row is None or row.revoked_at is not None or utcnow() >= row.expires_at:
            return None
        return row

    def access_token_record(self, jti: object) -> AccessTokenRecord | None:
        """The row of ``jti`` whatever its state, read as three columns (introspection)."""
        if not isinstance(jti, str) or not jti or len(jti) > 64:
            return None
        row = self.db.execute(_ACCESS_RECORD, {"p_jti": jti}).first()
        return AccessTokenRecord(*row) if row is not None else None

    def revoke_access_token(
        self, jti: str, *, client_id: str | None = None, expires_at: dt.datetime | None = None
    ) -> int:
        """Revoke one access token (RFC 7009). A client_credentials token has no row: given
        its ``client_id`` and ``expires_at`` (from its verified claims), a revoked row is
        written for it, which introspection reads as the deny-list entry."""
        count = self._revoke_access(IssuedAccessToken.jti == jti)
        if count or client_id is None or expires_at is None:
            return count
        now = utcnow()
        values = dict(jti=jti, client_id=client_id, issued_at=now, expires_at=expires_at, revoked_at=now)
        dialect = self.db.get_bind().dialect.name
        upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_access)
        # Two revocations of one token at once: the second finds the row already there.
        return self.db.execute(upsert.values(**values).on_conflict_do_nothing()).rowcount or 0

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
    ) -> tuple[IssuedRefresh, str]:
        secret = new_secret()
        now = utcnow()
        values = {
            "id": random_id(),
            "token_hash": sha256_hex(secret),
            "family_id": family_id or random_id(),
            "client_id": client_id,
            "user_id": user_id,
            "session_id": session_id,
            "code_id": code_id,
            "scope": scope,
            "resource": list(resource or []),
            "auth_time": auth_time,
            "amr": list(amr),
            "acr": acr,
            "created_at": now,
            "expires_at": expires_at or now + dt.timedelta(seconds=REFRESH_SECONDS),
            "used_at": None,
            "revoked_at": None,
        }
        self.db.execute(_INSERT_REFRESH, values)
        return IssuedRefresh(values["id"], values["family_id"], values["token_hash"], values["expires_at"]), secret

    def find_refresh(self, token: object) -> RefreshRecord | None:
        """A refresh token by its value, whatever its state (introspection, revocation)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        row = self.db.execute(_FIND_REFRESH, {"p_hash": sha256_hex(token)}).first()
        return RefreshRecord(*row) if row is not None else None

    def use_refresh(self, token: object, *, client_id: str, ctx: RequestContext | None) -> ClaimedRefresh | None:
        """Consume a refresh token for rotation. None when unknown, another client's,
        revoked or expired, or its account is disabled; ReplayDetected (after revoking
        the family) when rotated before.

        One statement in the usual case: an UPDATE that only a live, unused token of this
        client whose account is active matches, returning what the grant needs (RFC 9700
        section 4.14.2: of two concurrent uses exactly one wins). Only when it matches
        nothing does a SELECT tell a replay from an unknown or dead token.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        token_hash = sha256_hex(token)
        now = utcnow()
        claimed = self.db.execute(
            _CLAIM_REFRESH, {"p_hash": token_hash, "p_client": client_id, "p_now": now, "p_used": now}
        ).first()
        if claimed is not None:
            return ClaimedRefresh(*claimed, used_at=now)
        row = self.db.execute(_REFRESH_STATE, {"p_hash": token_hash}).first()
        if row is None or row.client_id != client_id or row.revoked_at is not None or row.used_at is None:
            return None  # unknown, another client's, revoked, expired or its account disabled
        count = self.revoke_family(row.family_id)
        self.audit.record(
            "oauth.refresh_reused", ctx=ctx, user_id=row.user_id, session_id=row.session_id,
            client_id=client_id, family_id=row.family_id, revoked=count,
        )
        raise ReplayDetected(row.family_id)

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
