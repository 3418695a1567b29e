"""Forgotten password: /reset asks for a link, /reset/confirm sets the new password.

Thin: the rules live in idp/accounts/reset.py. Endpoints are ``reset.*`` so that the
named limit ``ip.reset`` applies to their POSTs (idp/protection/ratelimits.py).
"""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, session, url_for

from idp.crypto.tokens import looks_like_secret
from idp.errors import InvalidInput, InvalidToken
from idp.web import sso
from idp.web.requests import form_text, registry, request_context, services

bp = Blueprint("reset", __name__)


@bp.route("/reset", methods=["GET", "POST"], endpoint="request")
def request_link():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return render_template("reset_request.html")
    username = form_text("username", max_length=1024)
    services().password_reset().request(username, ctx=request_context())
    services().db.commit()
    # One page, byte for byte, whatever was typed and whether or not it is an account;
    # the mail (if any) leaves after the answer (services().mail is this request's
    # queue: idp/web/requests.py), so its cost does not show in the timing.
    return make_response(render_template("reset_sent.html"))


def _token_from_query() -> str:
    # Exactly one token of the shape we mail; anything else is not one of our links.
    tokens = request.args.getlist("token")
    if len(tokens) != 1 or not looks_like_secret(tokens[0]):
        raise InvalidToken()
    return tokens[0]


@bp.get("/reset/confirm", endpoint="confirm_page")
def confirm_page():  # type: ignore[no-untyped-def]
    # GET shows the form and spends nothing: mail scanners fetch links.
    token = _token_from_query()
    try:
        user = services().password_reset().check(token, ctx=request_context())
    except InvalidToken:
        services().db.commit()  # the failure is audited
        raise
    return render_template("reset_confirm.html", token=token, email=user.email,
                           min_length=registry().password_policy.min_length)


@bp.post("/reset/confirm", endpoint="confirm")
def confirm():  # type: ignore[no-untyped-def]
    token = form_text("token", max_length=128)
    new_password = form_text("new_password", max_length=4096)
    try:
        user = services().password_reset().complete(token, new_password, ctx=request_context())
    except InvalidToken:
        services().db.commit()
        raise
    except InvalidInput as error:  # the policy said no: same link, another password
        services().db.commit()
        return (
            render_template("reset_confirm.html", token=token if looks_like_secret(token) else "",
                            error=error.public_message, min_length=registry().password_policy.min_length),
            error.status,
        )
    services().db.commit()
    # Attack protection: blocks on this account end with the password they were guarding.
    registry().protection.attack.account_reset(user.email)
    # The "password changed" notice leaves after the response (this request's queue).
    # Not signed in: the next sign-in asks for the new password and the second factor.
    session.clear()
    response = redirect(url_for("auth.login", reset=1))
    sso.clear_cookie(response)
    return response
