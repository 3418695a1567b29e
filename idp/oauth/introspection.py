"""Token introspection: RFC 7662 (and RFC 9068 §5 for our JWT access tokens).

A protected resource authenticates as a confidential client and may introspect the
tokens issued to itself; first-party clients (our own resource servers) may introspect
any. A JWT access token is active only while its signing key is published, it has not
expired, its client is enabled, and it has not been revoked: a person's token needs its
unrevoked record (replay, reuse, logout, reset and revocation set ``revoked_at``); a
client's token (client_credentials) has no record unless RFC 7009 revoked it
(idp/oauth/store.py).

Introspection only reads, so its statements run without a transaction (one round trip
each instead of BEGIN, statement, ROLLBACK): ``read_only_database``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from flask import Blueprint

from idp.db import utcnow
from idp.keys.jose import InvalidJwt
from idp.oauth.models import Client
from idp.oauth.server import authorization_server, body_only_problem, json_error, read_only_database
from idp.oauth.store import RefreshRecord
from idp.oauth.tokens import is_client_token
from idp.web.requests import services

bp = Blueprint("oauth_introspection", __name__)


@dataclass
class PresentedAccessToken:
    claims: dict[str, Any]
    # The person it was issued to (None: a client's own token), and whether it is live.
    user_id: str | None
    active: bool

    @property
    def client_id(self) -> str:
        return str(self.claims.get("client_id"))

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def is_expired(self) -> bool:
        return int(time.time()) >= self.claims["exp"]  # verified to be an int

    def audience_is(self, resource_uri: str | None) -> bool:
        aud = self.claims.get("aud")
        return resource_uri is not None and (aud == resource_uri or (isinstance(aud, list) and resource_uri in aud))

    def is_revoked(self) -> bool:
        return not self.active


@dataclass
class PresentedRefreshToken:
    row: RefreshRecord

    @property
    def client_id(self) -> str:
        return self.row.client_id

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def is_expired(self) -> bool:
        return utcnow() >= self.row.expires_at

    def audience_is(self, resource_uri: str | None) -> bool:
        return resource_uri is not None and resource_uri in self.row.resource

    def is_revoked(self) -> bool:
        # A rotated token is as dead as a revoked one.
        return self.row.revoked_at is not None or self.row.used_at is not None


def lookup_token(value: object) -> PresentedAccessToken | PresentedRefreshToken | None:
    """Find a token by its value, whatever the hint says (RFC 7009 §2.1 allows that)."""
    if not isinstance(value, str) or not value or len(value) > 8192:
        return None
    s = services()
    if value.count(".") == 2:
        try:
            claims = s.token_minter.verify(value)
        except InvalidJwt:
            return None
        if s.clients.get(claims.get("client_id")) is None:
            return None  # a disabled client's tokens die with it
        record = s.oauth_tokens.access_token_record(claims.get("jti"))
        if is_client_token(claims):
            # No record unless revoked (RFC 7009); rows from before that rule are live ones.
            return PresentedAccessToken(claims, user_id=None, active=record is None or record.revoked_at is None)
        live = (
            record is not None and record.revoked_at is None and utcnow() < record.expires_at
            and record.user_id is not None and record.user_id == claims.get("sub")
        )
        return PresentedAccessToken(claims, user_id=record.user_id if live else None, active=live)  # type: ignore[union-attr]
    row = s.oauth_tokens.find_refresh(value)
    return PresentedRefreshToken(row) if row is not None else None


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return lookup_token(token_string)

    def check_permission(self, token: Any, client: Client, request: Any) -> bool:
        # The client the token was issued to; our own first-party services; and the API
        # the token is for (RFC 8707 resource registered by that client).
        return token.check_client(client) or client.row.first_party or token.audience_is(client.row.resource_uri)

    def introspect_token(self, token: Any) -> dict[str, Any]:
        if isinstance(token, PresentedAccessToken):
            payload = {k: v for k, v in token.claims.items() if k in (
                "iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "auth_time", "acr", "amr"
            )}
            payload.update(active=True, token_type="Bearer")
            return payload
        row = token.row
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": row.client_id,
            "sub": row.user_id,
            "scope": row.scope,
            "iat": int(row.created_at.timestamp()),
            "exp": int(row.expires_at.timestamp()),
            "auth_time": int(row.auth_time.timestamp()),
            "acr": row.acr,
        }


@bp.route("/introspect", methods=["POST"])
def introspect():  # type: ignore[no-untyped-def]
    problem = body_only_problem()
    if problem:
        return json_error(400, "invalid_request", problem)
    read_only_database()
    return authorization_server().create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)
