"""The UserInfo endpoint: OpenID Connect Core §5.3, protected per RFC 6750.

The bearer token must be one of our RFC 9068 access tokens: signed by a published key
with exactly that key's algorithm (so ``alg: none`` and HS256-with-our-public-key fail),
``typ: at+jwt``, unexpired, its ``jti`` unrevoked, issued for a person with ``openid``.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskJsonRequest
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from flask import Blueprint, jsonify, request

from idp.oauth.introspection import PresentedAccessToken, lookup_token
from idp.oauth.server import cors, oauth_error_response, preflight, read_only_database
from idp.oauth.tokens import user_claims
from idp.web.requests import services

bp = Blueprint("oauth_userinfo", __name__)


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Any:
        token = lookup_token(token_string)
        return token if isinstance(token, PresentedAccessToken) else None


protector = ResourceProtector()
protector.register_token_validator(AccessTokenValidator())


@bp.route("/userinfo", methods=["GET", "POST", "OPTIONS"])
def userinfo():  # type: ignore[no-untyped-def]
    if request.method == "OPTIONS":
        return preflight("GET, POST")
    read_only_database()
    try:
        token = protector.validate_request(scopes=["openid"], request=FlaskJsonRequest(request))
        user = services().accounts.get(token.user_id) if token.user_id else None
        if user is None or not user.active:
            raise InvalidTokenError()
    except OAuth2Error as error:
        return cors(oauth_error_response(error), any_client=True)
    return cors(jsonify(user_claims(user, token.get_scope())), client_id=token.client_id)
