"""Wiring: one Authlib AuthorizationServer per app, its grants and endpoints, and the
small helpers every endpoint module shares (JSON errors, no-store, CORS, parameter
hygiene). The endpoints themselves live one per module (authorize.py, token.py, ...).
"""

from __future__ import annotations

import base64
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Flask, Response, current_app, jsonify, request

from idp.oauth.models import Client
from idp.web.requests import services

# RFC 6749 §3.1 and §3.2: "parameters MUST NOT be included more than once".
MAX_PARAM_LENGTH = 2048
MAX_PARAMS = 40


class AuthorizationServer(FlaskAuthorizationServer):
    def query_client(self, client_id: str) -> Client | None:
        clients = services().clients
        info = clients.get(client_id)  # from the process's client cache: no database
        return Client(info, clients) if info is not None else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:  # pragma: no cover
        raise AssertionError("grants store their own tokens (idp/oauth/grants.py)")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No blinker signals: audit events are written by the services."""

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        response = super().handle_response(status_code, payload, headers)
        if response.mimetype == "application/json":
            # RFC 6749 §5.1: token responses, and their errors, are never cached.
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response


def build_server() -> AuthorizationServer:
    from idp.oauth import grants
    from idp.oauth.end_session import EndSessionEndpoint
    from idp.oauth.introspection import IntrospectionEndpoint
    from idp.oauth.revocation import RevocationEndpoint

    server = AuthorizationServer()
    server.register_grant(grants.AuthorizationCodeGrant, [grants.S256CodeChallenge(required=True), grants.OpenIDCode()])
    server.register_grant(grants.RefreshTokenGrant)
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(EndSessionEndpoint)
    return server


def authorization_server() -> AuthorizationServer:
    return current_app.extensions["idp.oauth"]


def init_app(app: Flask) -> None:
    app.extensions["idp.oauth"] = build_server()


# ------------------------------------------------------------------ helpers
def read_only_database() -> None:
    """For endpoints that only read (introspection, userinfo): run this request's
    statements in autocommit, one round trip each, instead of BEGIN + statement +
    ROLLBACK. Called before the request's first statement; never where anything is
    written, since autocommit would give up the atomicity of several writes."""
    db = services().db
    if not db.in_transaction():
        db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def json_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def oauth_error_response(error: OAuth2Error) -> Response:
    status, body, headers = error()
    response = jsonify(body)
    response.status_code = status
    for key, value in headers:
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


# RFC 6749 Appendix A: these parameters are printable ASCII by grammar (VSCHAR, NQCHAR,
# URI-reference). Anything else is refused here, before Authlib, which would otherwise
# echo the value into an error description and fail on characters RFC 6749 forbids there.
ASCII_PARAMETERS = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "code", "code_challenge",
    "code_challenge_method", "code_verifier", "grant_type", "refresh_token", "response_mode",
    "prompt", "max_age", "resource",
})
# RFC 8707 §2: a client may name several resources, one parameter each.
MULTI_VALUED_PARAMETERS = frozenset({"resource"})


def _printable_ascii(value: str) -> bool:
    return all(" " <= ch <= "~" for ch in value)


def parameter_problem(*sources: Any) -> str | None:
    """Why these request parameters are unacceptable (duplicates, size, characters), or None."""
    count = 0
    for source in sources:
        for key in source:
            values = source.getlist(key)
            count += 1
            if len(values) > 1 and key not in MULTI_VALUED_PARAMETERS:
                return f"The parameter {key[:40]} was sent more than once."
            if len(key) > 64 or any(len(v) > MAX_PARAM_LENGTH for v in values):
                return "A parameter is too long."
            if any("\x00" in v for v in values):
                return "A parameter contains a NUL character."
            if key in ASCII_PARAMETERS and not all(_printable_ascii(v) for v in values):
                return f"The parameter {key} must be printable ASCII (RFC 6749 Appendix A)."
    if count > MAX_PARAMS:
        return "Too many parameters."
    return None


def body_only_problem() -> str | None:
    """Token-style endpoints take their parameters in the form body only (RFC 6749 §3.2),
    and HTTP Basic credentials, when sent, must be readable (RFC 6749 §2.3.1)."""
    if request.args:
        return "Send the parameters in the request body, not in the URL."
    if request.mimetype != "application/x-www-form-urlencoded" and (request.content_length or request.data):
        return "Send the parameters as application/x-www-form-urlencoded."
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return "The Authorization header is not valid HTTP Basic credentials."
        if ":" not in decoded or len(decoded) > 1024:
            return "The Authorization header is not valid HTTP Basic credentials."
    return parameter_problem(request.form)


def cacheable_document(body: bytes, etag: str, *, mimetype: str, max_age: int) -> Response:
    """A public document (discovery, JWKS) with its ETag; a cache revalidating an
    unchanged one with If-None-Match gets 304 without the body (RFC 9110 §13.1.2)."""
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag}
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(etag.strip('"')):
        return Response(status=304, headers=headers)
    return Response(body, mimetype=mimetype, headers=headers)


# ------------------------------------------------------------------ CORS
CORS_MAX_AGE = "600"


def cors(response: Response, *, client_id: str | None = None, any_client: bool = False) -> Response:
    """Allow the request's Origin only when a client registered it (via its redirect URIs).

    ``client_id`` narrows it to that client's origins; ``any_client`` accepts an origin
    registered by any client (JWKS, preflights, which name no client).
    """
    origin = request.headers.get("Origin")
    # Not response.vary.add: parsing an absent Vary costs Werkzeug an exception per
    # response, and none of these responses has one yet (issue 3's per-request work).
    if response.headers.getlist("Vary"):
        response.vary.add("Origin")
    else:
        response.headers["Vary"] = "Origin"
    if not origin:
        return response
    if client_id is None and not any_client:
        return response
    if services().clients.origin_allowed(origin, client_id=None if any_client else client_id):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
    return response


def preflight(methods: str) -> Response:
    response = current_app.make_response(("", 204))
    cors(response, any_client=True)
    if "Access-Control-Allow-Origin" in response.headers:
        response.headers["Access-Control-Allow-Methods"] = methods
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    return response
