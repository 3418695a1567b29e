"""Errors rendered in one place: a page for people, JSON for API clients.

4xx details are shown (they tell the person what to fix); 5xx details are only logged.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from idp.errors import IdpError

# Prefixes whose callers are programs, not people (the OAuth issue adds its own).
JSON_PREFIXES: list[str] = [
    "/healthz",
    "/readyz",
    # OAuth/OIDC endpoints called by programs (idp/oauth/).
    "/token",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/jwks.json",
    "/.well-known/",
    # The admin API (idp/admin/): unknown paths and wrong methods answer in JSON too.
    "/admin/",
]

_FRIENDLY = {
    400: "The request could not be understood. Go back and try again.",
    404: "There is nothing at this address.",
    405: "That action is not possible here.",
    413: "That was far more data than this form takes.",
    429: "Too many attempts. Wait a little, then try again.",
}


def wants_json() -> bool:
    if any(request.path.startswith(p) for p in JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def render_error(status: int, code: str, message: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    if wants_json():
        response = jsonify(error=code, error_description=message)
    else:
        response = current_app.make_response((render_template("error.html", status=status, message=message), status))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(IdpError)
    def _idp_error(error: IdpError):  # type: ignore[no-untyped-def]
        if error.status >= 500:
            app.logger.error("server error: %s", error.detail or error)
        return render_error(error.status, error.code, error.public_message)

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):  # type: ignore[no-untyped-def]
        return render_error(
            400,
            "csrf_failed",
            "This form has expired or was not sent from this site. Go back, reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):  # type: ignore[no-untyped-def]
        status = error.code or 500
        if status >= 500:
            return _server_error(error)
        message = _FRIENDLY.get(status, error.description or "The request could not be processed.")
        headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after", "www-authenticate")}
        return render_error(status, error.name.lower().replace(" ", "_"), message, headers)

    @app.errorhandler(Exception)
    def _server_error(error: Exception):  # type: ignore[no-untyped-def]
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500, "server_error", "Something went wrong on our side. Please try again later.")

    _ = InternalServerError  # documented: every 5xx goes through _server_error
