"""Change the sign-in address: /account/email asks, /account/email/confirm (the mailed
link) changes it. Thin: the rules live in idp/accounts/email_change.py.

Endpoints are ``email_change.*``: the named limit ``ip.reset`` applies to their POSTs
(idp/protection/ratelimits.py), since each one mails an address someone typed.
"""

from __future__ import annotations

from flask import Blueprint, make_response, render_template, request

from idp.accounts.email_change import BAD_LINK
from idp.crypto.tokens import looks_like_secret
from idp.errors import InvalidInput, InvalidToken
from idp.web import sso
from idp.web.requests import form_text, request_context, services

bp = Blueprint("email_change", __name__)


@bp.route("/account/email", methods=["GET", "POST"], endpoint="start")
@sso.login_required
def start():  # type: ignore[no-untyped-def]
    user = sso.current_user()
    assert user is not None
    if user.password_hash is None:
        return render_template("email_change.html", no_password=True)
    if request.method == "GET":
        return render_template("email_change.html")
    try:
        new_email = services().email_change.request(
            user,
            form_text("current_password", max_length=4096),
            form_text("new_email", max_length=1024),
            ctx=request_context(),
        )
    except InvalidInput as error:
        services().db.commit()  # the failed attempt is audited
        return render_template("email_change.html", error=error.public_message,
                               new_email=request.form.get("new_email", "")[:320]), error.status
    services().db.commit()  # the link is valid before it is mailed
    # The same page whether the link went out or the address belongs to someone else
    # (then its owner is warned instead); the mail leaves after the answer, so its cost
    # does not show in the timing either (services().mail is this request's queue).
    return make_response(render_template("email_change_sent.html", new_email=new_email))


def _token_from_query() -> str:
    # Exactly one token of the shape we mail; anything else is not one of our links.
    tokens = request.args.getlist("token")
    if len(tokens) != 1 or not looks_like_secret(tokens[0]):
        raise InvalidToken(BAD_LINK)
    return tokens[0]


@bp.get("/account/email/confirm", endpoint="confirm_page")
def confirm_page():  # type: ignore[no-untyped-def]
    # GET shows a button and spends nothing: mail scanners fetch links. No sign-in asked:
    # the link proves the new mailbox, and it only works for the account it was made for.
    token = _token_from_query()
    try:
        pending = services().email_change.check(token, ctx=request_context())
    except InvalidToken:
        services().db.commit()  # the failure is audited
        raise
    return render_template("email_change_confirm.html", token=token, new_email=pending.new_email)


@bp.post("/account/email/confirm", endpoint="confirm")
def confirm():  # type: ignore[no-untyped-def]
    token = form_text("token", max_length=128)
    try:
        changed = services().email_change.confirm(token, ctx=request_context())
    except InvalidToken:
        services().db.commit()
        raise
    services().db.commit()
    return make_response(render_template("email_change_done.html", new_email=changed.new_email,
                                         signed_in=sso.current() is not None))
