"""Sign-in and sign-out pages (DESIGN section 5: username, password, one submit)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from idp.errors import EmailNotVerified, InvalidCredentials, InvalidInput
from idp.web import protection, sso
from idp.web.requests import display_hint, form_text, request_context, services

bp = Blueprint("auth", __name__)


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    return redirect(url_for("account.overview"))


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    next_url = sso.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=next_url, username=display_hint(request.args.get("login_hint")))
    username = form_text("username", max_length=1024)
    password = form_text("password", max_length=4096)
    guard = protection.PasswordStep(username)  # issue 6: attack protection around argon2
    try:
        guard.check(password)  # before argon2; a refused attempt costs and reads the same
        user = services().accounts.authenticate(username, password, ctx=request_context())
    except (InvalidCredentials, EmailNotVerified, InvalidInput) as error:
        guard.failed(error)
        services().db.commit()  # the failure is audited even though nothing else changed
        template = "check_email.html" if isinstance(error, EmailNotVerified) else "login.html"
        return (
            render_template(template, error=error.public_message, next=next_url, username=username[:254]),
            error.status,
        )
    guard.succeeded(user)
    return sso.sign_in(user, amr=["pwd"], next_url=next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout():  # type: ignore[no-untyped-def]
    # GET only asks: a link or an <img> must not be able to sign anyone out.
    if request.method == "GET":
        return render_template("logout.html", signed_in=sso.current() is not None)
    record = sso.current()
    if record is not None:
        services().sessions.end(record, reason="signed_out", ctx=request_context())
        services().audit.record("signout", ctx=request_context(), user_id=record.user_id, session_id=record.id)
        services().db.commit()
    response = redirect(url_for("auth.login"))
    sso.clear_cookie(response)
    return response
