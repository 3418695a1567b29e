"""Browser hardening on every response: CSP, framing, referrer, caching, CSRF.

The CSP is a dict so that one view can widen one directive (``widen_csp``) without
loosening the rest; there is no inline script or style anywhere, so none is allowed.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from idp.errors import InvalidInput


class _CsrfProtect(CSRFProtect):
    """Flask-WTF's CSRF check, refusing a token sent more than once.

    Flask-WTF reads the first ``csrf_token`` and ignores the rest; a form we rendered
    carries exactly one, so two mean the request was put together by something else
    (STYLE 11: parameters that must be single are rejected when duplicated).
    """

    def _get_csrf_token(self):  # type: ignore[no-untyped-def]
        if len(request.form.getlist(current_app.config["WTF_CSRF_FIELD_NAME"])) > 1:
            return None  # reported as a missing token: 400, nothing done
        return super()._get_csrf_token()


csrf = _CsrfProtect()


class _FlowCookieInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, without building its signer for requests that
    carry no flow cookie (every API call): the same result, less work per request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:  # type: ignore[override]
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


FORM_URLENCODED = "application/x-www-form-urlencoded"

BASE_CSP: dict[str, list[str]] = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
}


def widen_csp(directive: str, *sources: str) -> None:
    """Let this response allow more for one directive (e.g. form-action to a client)."""
    if "csp" not in g:
        g.csp = copy.deepcopy(BASE_CSP)
    g.csp.setdefault(directive, []).extend(s for s in sources if s not in g.csp[directive])


def _render_csp(policy: dict[str, list[str]]) -> str:
    return "; ".join(f"{k} {' '.join(v)}" for k, v in policy.items())


# Most responses (every API answer) carry the unwidened policy: rendered once, not per
# response (issue 3: the per-response work of the token endpoint is what it is measured on).
BASE_CSP_HEADER = _render_csp(BASE_CSP)


# A percent-escape of a byte 0x80-0xFF: only these can make an ASCII body decode to
# something that is not UTF-8.
_HIGH_ESCAPE = re.compile(rb"%[89a-fA-F]")


def _require_utf8() -> None:
    """Refuse query strings and url-encoded bodies that are not UTF-8 (HTML, RFC 6749 App. B).

    Werkzeug does not fail on an undecodable escape: it keeps it as literal text, so the
    bytes 0xFF 0xFE sent as ``%FF%FE@x.com`` reached the views as the six characters
    "%FF%FE" - a valid-looking address nobody typed, and sign-up created it. (Multipart
    fields arrive with U+FFFD instead, which ``form_text`` refuses.) Checked once here, for
    every route, before any view or CSRF check runs.
    """
    sources = [request.query_string]
    if request.method != "GET" and request.mimetype == FORM_URLENCODED:
        # Bounded by MAX_CONTENT_LENGTH (413 beyond); cached, so form parsing reuses it.
        sources.append(request.get_data(cache=True))
    for raw in sources:
        if not raw or (raw.isascii() and _HIGH_ESCAPE.search(raw) is None):
            continue  # plain ASCII whose escapes all decode to ASCII: UTF-8 by construction
        try:
            parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise InvalidInput(
                "This request contained characters that could not be read (it was not UTF-8)."
            ) from None


# Set on every response unless the view set its own value.
_ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # same-origin, not no-referrer: Flask-WTF checks the Referer of HTTPS form posts.
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)
# Authentication pages and JSON carry personal data or one-time state: nothing in between
# may keep them. Views that may be cached say so themselves; /static/ may be cached.
_NOT_STORED = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
_HSTS = (("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),)


class DefaultHeaders:
    """WSGI middleware: the headers above on every response the app sends (error pages
    included) unless the response has its own. At the WSGI level, on the plain header
    list, because the same work as an after_request hook on Werkzeug's Headers was a
    sixth of a discovery request's CPU (issue 3). A widened CSP is set by the hook below."""

    def __init__(self, wsgi_app: Any, *, hsts: bool) -> None:
        self.wsgi_app = wsgi_app
        common = (("Content-Security-Policy", BASE_CSP_HEADER), *_ALWAYS, *(_HSTS if hsts else ()))
        self._pages = tuple((name.lower(), (name, value)) for name, value in (*common, *_NOT_STORED))
        self._static = tuple((name.lower(), (name, value)) for name, value in common)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        defaults = self._static if environ.get("PATH_INFO", "").startswith("/static/") else self._pages

        def with_defaults(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            extra = [header for lower, header in defaults if lower not in present]
            return start_response(status, headers + extra, exc_info)

        return self.wsgi_app(environ, with_defaults)


def _widened_csp(response: Response) -> Response:
    policy = g.get("csp")
    if policy is not None and "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = _render_csp(policy)
    return response


def init_app(app: Flask) -> None:
    s = app.extensions["idp"].settings
    app.config.update(
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the flow cookie (below)
        WTF_CSRF_SSL_STRICT=True,
        # The Flask session carries only the CSRF token and short interaction state.
        SESSION_COOKIE_NAME="idp_flow" if s.is_local_http else "__Host-idp_flow",
        SESSION_COOKIE_SECURE=not s.is_local_http,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,  # __Host- forbids a Domain attribute
        PERMANENT_SESSION_LIFETIME=s.session_max_seconds,
    )
    app.session_interface = _FlowCookieInterface()
    # Before CSRFProtect's own hook, so that an unreadable body is named as such.
    app.before_request(_require_utf8)
    csrf.init_app(app)
    app.after_request(_widened_csp)
    app.wsgi_app = DefaultHeaders(app.wsgi_app, hsts=not s.is_local_http)  # type: ignore[method-assign]
