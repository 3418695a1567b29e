"""Listing and disabling clients, for the admin API. No Flask in here.

ClientService (idp/clients/service.py) registers and authenticates clients; what an
operator also needs is to see them all, including disabled ones, and to switch one off.
Disabling a client ends what it holds: its refresh tokens and access tokens are revoked
at once (the token endpoint, introspection and userinfo already refuse a disabled
client's requests, ClientService.get). A client's secret hash never leaves this module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.accounts.status import iso
from idp.audit import AuditService
from idp.context import RequestContext
from idp.db import utcnow
from idp.models import IssuedAccessToken, OAuthClient, RefreshToken

MAX_CLIENT_ID = 64


class ClientAdmin:
    def __init__(self, *, db: Session, audit: AuditService) -> None:
        self.db = db
        self.audit = audit

    def all(self, *, limit: int = 1000) -> list[OAuthClient]:
        return list(self.db.scalars(select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id).limit(limit)))

    def find(self, client_id: str) -> OAuthClient | None:
        """Enabled or not (ClientService.get hides disabled clients)."""
        if not client_id or len(client_id) > MAX_CLIENT_ID:
            return None
        return self.db.get(OAuthClient, client_id)

    def disable(self, client: OAuthClient, *, actor: str | None, ctx: RequestContext | None = None) -> dict[str, Any]:
        changed = client.disabled_at is None
        if changed:
            client.disabled_at = utcnow()
        now = utcnow()
        refresh = self.db.execute(
            update(RefreshToken)
            .where(RefreshToken.client_id == client.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount or 0
        access = self.db.execute(
            update(IssuedAccessToken)
            .where(IssuedAccessToken.client_id == client.id, IssuedAccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount or 0
        self.audit.record("client.disabled", ctx=ctx or RequestContext.system(), actor=actor, client_id=client.id,
                          changed=changed, tokens_revoked=refresh + access)
        return {"client_id": client.id, "changed": changed, "tokens_revoked": refresh + access}


def describe(client: OAuthClient) -> dict[str, Any]:
    return {
        "client_id": client.id,
        "name": client.name,
        "public": client.public,
        "first_party": client.first_party,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": client.scope,
        "access_token_seconds": client.access_token_seconds,
        "id_token_alg": client.id_token_alg,
        "min_acr": client.min_acr,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "resource_uri": client.resource_uri,
        "created": iso(client.created_at),
        "disabled": client.disabled_at is not None,
        "disabled_at": iso(client.disabled_at),
    }
