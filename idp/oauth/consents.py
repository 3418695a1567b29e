"""Consent: what a user let a third-party client do, remembered per client and scope set.

A request is covered when every scope it asks for was granted before; asking for more
shows the consent page again, and the new grant is the union. Withdrawing consent (the
account page) also revokes every token the client holds for the user.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.audit import AuditService
from idp.context import RequestContext
from idp.db import utcnow
from idp.models import Consent
from idp.oauth.store import TokenStore, scope_set


class ConsentService:
    def __init__(self, *, db: Session, audit: AuditService, tokens: TokenStore) -> None:
        self.db = db
        self.audit = audit
        self.tokens = tokens

    def covers(self, user_id: str, client_id: str, scope: str) -> bool:
        row = self._get(user_id, client_id)
        return row is not None and scope_set(scope) <= scope_set(row.scope)

    def grant(self, user_id: str, client_id: str, scope: str, *, ctx: RequestContext | None) -> Consent:
        row = self._get(user_id, client_id)
        now = utcnow()
        if row is None:
            row = Consent(user_id=user_id, client_id=client_id, scope="", created_at=now, updated_at=now)
            self.db.add(row)
        row.scope = " ".join(sorted(scope_set(row.scope) | scope_set(scope)))
        row.updated_at = now
        self.db.flush()
        self.audit.record("consent.granted", ctx=ctx, user_id=user_id, client_id=client_id, scope=row.scope)
        return row

    def for_user(self, user_id: str) -> list[Consent]:
        stmt = select(Consent).where(Consent.user_id == user_id).order_by(Consent.updated_at.desc())
        return list(self.db.scalars(stmt))

    def revoke(self, user_id: str, consent_id: str, *, ctx: RequestContext | None) -> bool:
        """Withdraw one of the user's own consents; False if it is not theirs."""
        row = self.db.get(Consent, consent_id) if len(consent_id) <= 32 else None
        if row is None or row.user_id != user_id:
            return False
        revoked = self.tokens.revoke_for_user_client(user_id, row.client_id)
        self.db.delete(row)
        self.audit.record(
            "consent.revoked", ctx=ctx, user_id=user_id, client_id=row.client_id, tokens_revoked=revoked
        )
        return True

    def _get(self, user_id: str, client_id: str) -> Consent | None:
        return self.db.scalar(select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id))
