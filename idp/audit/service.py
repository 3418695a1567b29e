"""The one way security events are written.

Append-only by construction: this service only inserts. Every event goes through
``record`` so that the tamper-evident hash chain can be added in one place. Never pass a
password, code, token or secret in ``details``: the log is read by operators.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.context import RequestContext
from idp.models import AuditEvent

_MAX_UA = 512


class AuditService:
    def __init__(self, *, db: Session) -> None:
        self.db = db

    def record(
        self,
        event: str,
        *,
        ctx: RequestContext | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        **details: Any,
    ) -> AuditEvent:
        row = AuditEvent(
            event=event,
            user_id=user_id,
            session_id=session_id,
            ip=ctx.ip if ctx else None,
            user_agent=(ctx.user_agent or "")[:_MAX_UA] or None if ctx else None,
            details=details,
        )
        self.db.add(row)
        return row

    def for_user(self, user_id: str, *, limit: int = 50) -> list[AuditEvent]:
        stmt = (
            select(AuditEvent).where(AuditEvent.user_id == user_id).order_by(AuditEvent.seq.desc()).limit(limit)
        )
        return list(self.db.scalars(stmt))
