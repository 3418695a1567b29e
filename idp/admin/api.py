"""The admin API: JSON over HTTP, mirroring the ``idp`` CLI (issue 7), same services.

Areas and the scope each needs: users (admin:users), clients (admin:clients), signing
keys (admin:keys), audit log (admin:audit). Who may call it is decided in bearer.py: an
access token for this API (RFC 8707 audience), issued to an administrator whose sign-in
was phishing-resistant. The contract is idp/admin/openapi.json, served without auth at
GET /admin/openapi.json (a test keeps it equal to the routes registered here).

Every view is named ``admin.*`` (the rate limit for API callers applies by that name,
idp/protection/ratelimits.py) and every mutation is audited with the acting admin's id.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response
from werkzeug.exceptions import HTTPException

from idp.admin.problems import ApiError, error_response, json_response
from idp.errors import IdpError

PREFIX = "/admin"
OPENAPI_PATH = Path(__file__).with_name("openapi.json")

bp = Blueprint("admin", __name__, url_prefix=PREFIX)


@cache
def openapi_document() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@bp.get("/openapi.json")
def openapi() -> Response:
    """The contract, public: it names routes and scopes, nothing about any account."""
    return json_response(openapi_document())


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.public_message, challenge=error.challenge,
                          headers=error.headers)


@bp.errorhandler(IdpError)
def _idp_error(error: IdpError) -> Response:
    # NotFound, InvalidInput, Conflict raised by the services: their public message.
    return error_response(error.status, error.code, error.public_message)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        raise error
    code = {413: "request_too_large", 415: "unsupported_media_type"}.get(status, "invalid_request")
    description = {413: "The request body is too large."}.get(status, error.description or "Bad request.")
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    return error_response(status, code, description, headers=headers)


def init_app(app: Flask) -> None:
    from idp.admin import audit, clients, keys, users  # noqa: F401 - their routes join bp
    from idp.web.security import csrf

    app.register_blueprint(bp)
    # Authorization is a bearer header, never a cookie: a cross-site page cannot make the
    # browser send it, so there is nothing for CSRF tokens to protect (RFC 6750 §5.3).
    csrf.exempt(bp)
