"""The token endpoint: RFC 6749 §3.2 (authorization_code §4.1.3 with RFC 7636 §4.5,
refresh_token §6, client_credentials §4.4), OpenID Connect Core §3.1.3.

Responses and errors carry ``Cache-Control: no-store`` (§5.1); a wrong client secret is
``401 invalid_client`` with ``WWW-Authenticate`` (§5.2). Whatever happened is committed,
errors included: a replayed code or refresh token revokes tokens, and that must stick.
"""

from __future__ import annotations

from flask import Blueprint, request

from idp.oauth.server import authorization_server, body_only_problem, cors, json_error, preflight
from idp.web.requests import services

bp = Blueprint("oauth_token", __name__)


@bp.route("/token", methods=["POST", "OPTIONS"])
def token():  # type: ignore[no-untyped-def]
    if request.method == "OPTIONS":
        return preflight("POST")
    problem = body_only_problem()
    if problem:
        return cors(json_error(400, "invalid_request", problem), client_id=_client_id())
    response = authorization_server().create_token_response()
    db = services().db
    if db.in_transaction():  # a client_credentials token writes nothing: no empty commit
        db.commit()
    return cors(response, client_id=_client_id())


def _client_id() -> str | None:
    client_id = request.form.get("client_id")
    if client_id:
        return client_id
    auth = request.authorization  # Werkzeug: None when absent or malformed
    return auth.username if auth is not None and auth.type == "basic" and auth.username else None
