"""Change password (/account/password): also where a forced change ends.

``sso.login_required`` sends a user whose password must change (found in a breach at
sign-in, or an operator's force-reset) here, and nowhere else, until it is changed.
``?next=/same-site/path`` (e.g. an interrupted /authorize) is where a successful change
continues; by default the account page.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request

from idp.errors import InvalidInput
from idp.web import sso
from idp.web.requests import form_text, registry, request_context, services

bp = Blueprint("password", __name__)


@bp.route("/account/password", methods=["GET", "POST"])
@sso.login_required
def change():  # type: ignore[no-untyped-def]
    user = sso.current_user()
    current = sso.current()
    assert user is not None and current is not None
    forced = bool(user.must_change_password)
    min_length = registry().password_policy.min_length
    next_url = sso.safe_next(request.values.get("next"))
    if user.password_hash is None:
        # An operator's force-reset left no password to prove (e.g. signed in by passkey):
        # the way out is the mailed reset link, not this form.
        return render_template("password_change.html", forced=forced, no_password=True, min_length=min_length,
                               next=next_url)
    if request.method == "GET":
        return render_template("password_change.html", forced=forced, min_length=min_length, next=next_url)
    try:
        services().password_change.change(
            user,
            form_text("current_password", max_length=4096),
            form_text("new_password", max_length=4096),
            ctx=request_context(),
            keep_session_id=current.id,
        )
    except InvalidInput as error:
        services().db.commit()  # the failed attempt is audited
        return (
            render_template("password_change.html", forced=forced, min_length=min_length, next=next_url,
                            error=error.public_message),
            error.status,
        )
    services().db.commit()
    flash("Your password has been changed. Every other session was signed out.")
    return redirect(next_url)
