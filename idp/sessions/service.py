"""SSO sessions: server-side records, a random cookie secret, idle and absolute ends.

The cookie carries 256 random bits; the table holds only their SHA-256, so a database
read does not yield live sessions. A new secret is issued at every sign-in (no fixation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.audit import AuditService
from idp.context import RequestContext
from idp.crypto.tokens import new_secret, sha256_hex
from idp.db import utcnow
from idp.models import SsoSession, User

# Writing last_seen_at on every request would turn each page view into a write;
# a minute of slack on a 30-minute idle limit is harmless.
_TOUCH_EVERY = dt.timedelta(seconds=60)


class SessionService:
    def __init__(
        self,
        *,
        db: Session,
        audit: AuditService,
        idle_seconds: int,
        max_seconds: int,
        on_end: Callable[[Sequence[str]], None] = lambda _ids: None,
    ) -> None:
        self.db = db
        self.audit = audit
        # Called with the ids of sessions that just ended: the tokens a session led to
        # die with it (wired to the OAuth token store in idp/registry.py).
        self.on_end = on_end
        self.idle = dt.timedelta(seconds=idle_seconds)
        self.max = dt.timedelta(seconds=max_seconds)

    def start(self, user: User, *, amr: list[str], ctx: RequestContext) -> tuple[SsoSession, str]:
        """Create a session; returns it and the cookie secret (shown once, stored hashed)."""
        secret = new_secret()
        now = utcnow()
        record = SsoSession(
            token_hash=sha256_hex(secret),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.max,
            auth_time=now,
            amr=list(amr),
            ip=ctx.ip,
            user_agent=(ctx.user_agent or "")[:512] or None,
        )
        self.db.add(record)
        self.db.flush()
        self.audit.record("session.started", ctx=ctx, user_id=user.id, session_id=record.id, amr=list(amr))
        return record, secret

    def resolve(self, secret: str | None) -> SsoSession | None:
        """The live session for a cookie secret, or None (unknown, ended, idle, expired)."""
        if not secret or len(secret) > 128:
            return None
        record = self.db.scalar(select(SsoSession).where(SsoSession.token_hash == sha256_hex(secret)))
        if record is None or record.ended_at is not None:
            return None
        now = utcnow()
        if now >= record.expires_at:
            self._end(record, "expired", None)
            return None
        if now - record.last_seen_at >= self.idle:
            self._end(record, "idle", None)
            return None
        if now - record.last_seen_at >= _TOUCH_EVERY:
            record.last_seen_at = now
        return record

    def active_for_user(self, user_id: str) -> list[SsoSession]:
        now = utcnow()
        stmt = (
            select(SsoSession)
            .where(
                SsoSession.user_id == user_id,
                SsoSession.ended_at.is_(None),
                SsoSession.expires_at > now,
                SsoSession.last_seen_at > now - self.idle,
            )
            .order_by(SsoSession.last_seen_at.desc())
        )
        return list(self.db.scalars(stmt))

    def end(self, record: SsoSession, *, reason: str, ctx: RequestContext | None) -> None:
        if record.ended_at is None:
            self._end(record, reason, ctx)

    def end_one_of_user(self, user_id: str, session_id: str, *, ctx: RequestContext) -> bool:
        """End one of the user's own sessions; False when it is not theirs or already over."""
        record = self.db.get(SsoSession, session_id)
        if record is None or record.user_id != user_id or record.ended_at is not None:
            return False
        self._end(record, "ended_by_user", ctx)
        return True

    def end_all_for_user(self, user_id: str, *, reason: str, ctx: RequestContext | None, keep: str | None = None) -> int:
        live = select(SsoSession.id).where(SsoSession.user_id == user_id, SsoSession.ended_at.is_(None))
        if keep is not None:
            live = live.where(SsoSession.id != keep)
        ids = list(self.db.scalars(live))
        if not ids:
            return 0
        self.db.execute(
            update(SsoSession)
            .where(SsoSession.id.in_(ids), SsoSession.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason)
            .execution_options(synchronize_session="fetch")
        )
        self.audit.record("session.ended_all", ctx=ctx, user_id=user_id, reason=reason, count=len(ids), kept=keep)
        self.on_end(ids)
        return len(ids)

    def _end(self, record: SsoSession, reason: str, ctx: RequestContext | None) -> None:
        record.ended_at = utcnow()
        record.end_reason = reason
        self.audit.record("session.ended", ctx=ctx, user_id=record.user_id, session_id=record.id, reason=reason)
        self.on_end([record.id])
