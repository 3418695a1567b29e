"""Token revocation: RFC 7009.

Revoking a refresh token revokes its whole family and the access tokens it produced
(§2.1 lets the server do so); revoking an access token switches off its ``jti``.
Unknown tokens get 200, as §2.2 requires. Public clients may revoke their own tokens.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from flask import Blueprint

from idp.oauth.introspection import PresentedAccessToken, lookup_token
from idp.oauth.server import authorization_server, body_only_problem, json_error
from idp.oauth.tokens import is_client_token
from idp.web.requests import request_context, services

bp = Blueprint("oauth_revocation", __name__)


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return lookup_token(token_string)

    def revoke_token(self, token: Any, request: Any) -> None:
        store = services().oauth_tokens
        if isinstance(token, PresentedAccessToken):
            claims = token.claims
            count = store.revoke_access_token(
                str(claims.get("jti")), client_id=token.client_id,
                # A client's token has no row to update: its revoked row lives until exp.
                expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC) if is_client_token(claims) else None,
            )
            kind = "access_token"
        else:
            count = store.revoke_family(token.row.family_id)
            kind = "refresh_token"
        services().audit.record(
            "token.revoked", ctx=request_context(), client_id=token.client_id, kind=kind, revoked=count
        )


@bp.route("/revoke", methods=["POST"])
def revoke():  # type: ignore[no-untyped-def]
    problem = body_only_problem()
    if problem:
        return json_error(400, "invalid_request", problem)
    response = authorization_server().create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)
    services().db.commit()
    return response
