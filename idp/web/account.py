"""The account page: who you are, where you are signed in, and ending those sessions."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from idp.web import sso
from idp.web.requests import request_context, services

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("")
@sso.login_required
def overview():  # type: ignore[no-untyped-def]
    user = sso.current_user()
    current = sso.current()
    assert user is not None and current is not None
    sessions = services().sessions.active_for_user(user.id)
    return render_template("account.html", user=user, sessions=sessions, current_id=current.id)


@bp.post("/sessions/<session_id>/end")
@sso.login_required
def end_session(session_id: str):  # type: ignore[no-untyped-def]
    current = sso.current()
    assert current is not None
    if len(session_id) > 32 or not services().sessions.end_one_of_user(
        current.user_id, session_id, ctx=request_context()
    ):
        flash("That session had already ended.")
    services().db.commit()
    if session_id == current.id:
        response = redirect(url_for("auth.login"))
        sso.clear_cookie(response)
        return response
    return redirect(url_for("account.overview"))


@bp.post("/sessions/end-others")
@sso.login_required
def end_other_sessions():  # type: ignore[no-untyped-def]
    current = sso.current()
    assert current is not None
    count = services().sessions.end_all_for_user(
        current.user_id, reason="ended_by_user", ctx=request_context(), keep=current.id
    )
    services().db.commit()
    flash(f"Signed out {count} other session{'s' if count != 1 else ''}.")
    return redirect(url_for("account.overview"))
