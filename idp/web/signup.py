"""Sign-up and email verification."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from idp.crypto.tokens import looks_like_secret
from idp.errors import InvalidInput, InvalidToken
from idp.web.requests import form_text, request_context, registry, services

bp = Blueprint("signup", __name__)


@bp.route("/register", methods=["GET", "POST"])
def register():  # type: ignore[no-untyped-def]
    min_length = registry().password_policy.min_length
    if request.method == "GET":
        return render_template("register.html", min_length=min_length)
    username = form_text("username", max_length=1024)
    password = form_text("password", max_length=4096)
    try:
        services().accounts.sign_up(username, password, ctx=request_context())
    except InvalidInput as error:
        return (
            render_template("register.html", error=error.public_message, username=username[:254], min_length=min_length),
            400,
        )
    services().db.commit()
    # The same page whether the address was new or already had an account.
    return render_template("check_email.html", sent_to=username[:254])


@bp.route("/verify-email", methods=["GET", "POST"])
def verify_email():  # type: ignore[no-untyped-def]
    # GET shows a button, POST consumes the token: mail scanners that pre-fetch links
    # must not burn a one-time token.
    if request.method == "GET":
        # Exactly one token of the shape we mail: a page that echoes anything else back
        # into a form (control characters, 10,000 characters) helps nobody.
        tokens = request.args.getlist("token")
        if len(tokens) != 1 or not looks_like_secret(tokens[0]):
            raise InvalidToken()
        return render_template("verify_email.html", token=tokens[0])
    try:
        services().accounts.verify_email(form_text("token", max_length=128), ctx=request_context())
    except InvalidToken:
        services().db.commit()
        raise
    services().db.commit()
    return redirect(url_for("auth.login", verified=1))
