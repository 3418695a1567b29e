"""The SSO cookie and the signed-in user of the current request.

Cookie: ``__Host-idp_sso`` (Secure, Path=/, no Domain) everywhere but plain-http
localhost, where browsers refuse ``__Host-`` without Secure and so the name drops the
prefix. HttpOnly and SameSite=Lax always.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, g, redirect, request, session, url_for

from idp import assurance
from idp.models import SsoSession, User
from idp.web.requests import close_db, request_context, send_mail_after, services, settings


def cookie_name() -> str:
    return "idp_sso" if settings().is_local_http else "__Host-idp_sso"


def current() -> SsoSession | None:
    if "sso" not in g:
        g.sso = services().sessions.resolve(request.cookies.get(cookie_name()))
        g.user = services().accounts.get(g.sso.user_id) if g.sso else None
        if g.sso is not None and (g.user is None or not g.user.active):
            g.sso = g.user = None
        # Idle/expiry ends and last-seen touches are written even on GET pages.
        services().db.commit()
    return g.sso


def current_user() -> User | None:
    current()
    return g.user


def set_cookie(response: Response, secret: str) -> None:
    s = settings()
    response.set_cookie(
        cookie_name(),
        secret,
        max_age=s.session_max_seconds,
        path="/",
        secure=not s.is_local_http,
        httponly=True,
        samesite="Lax",
    )


def clear_cookie(response: Response) -> None:
    s = settings()
    response.delete_cookie(cookie_name(), path="/", secure=not s.is_local_http, httponly=True, samesite="Lax")


def sign_in(user: User, *, amr: list[str], next_url: str) -> Response:
    """Start a fresh session (new secret: no fixation), replacing any the browser had."""
    ctx = request_context()
    old = current()
    if old is not None:
        services().sessions.end(old, reason="replaced", ctx=ctx)
    _record, secret = services().sessions.start(user, amr=amr, ctx=ctx)
    services().db.commit()
    session.clear()  # new flow cookie, so a new CSRF token too
    response = redirect(next_url)
    set_cookie(response, secret)
    return response


def safe_next(value: str | None, default: str = "/account") -> str:
    """Only same-site paths: '/x' yes; '//evil', '/\\evil', 'https://evil' no."""
    if not value or len(value) > 2048 or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 0x20 or c == "\\" for c in value):
        return default
    return value


def login_required(view: Callable[..., Any] | None = None, *, partial: bool = False) -> Any:
    """A signed-in session; by default one whose assurance meets the MFA policy (issue 4).

    ``partial=True`` lets a session below the baseline through: only the MFA pages use
    it, because they are how a password-only session reaches the baseline.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current() is None:
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("auth.login") + "?" + urlencode({"next": target}))
            if partial:
                return view(*args, **kwargs)
            # Second factor before anything else, the password change included: a
            # password alone never reaches an authenticated page under "required".
            record = current()
            if record is not None and not assurance.satisfies(
                assurance.acr_for(record.amr or []), assurance.baseline_acr(settings().mfa_policy)
            ):
                if request.method != "GET":  # a form post is not replayed; back to the account
                    return redirect(url_for("mfa.second_factor"))
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("mfa.second_factor") + "?" + urlencode({"next": target}))
            # A correct password from an unrecognised device owes a second proof even under
            # the optional policy (issue 6); required already asked for it above.
            from idp.web.protection import new_device_redirect  # late: protection imports sso

            if (detour := new_device_redirect()) is not None:
                return detour
            # Forced change (breach found at sign-in, operator reset): the change page only.
            if getattr(current_user(), "must_change_password", False) and request.endpoint != "password.change":
                return redirect(url_for("password.change", forced=1))
            return view(*args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.after_request(send_mail_after)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"signed_in_user": g.get("user"), "service_name": settings().service_name}
