"""Withdrawing a consent from the account page (the list is in templates/account.html)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for

from idp.web import sso
from idp.web.requests import request_context, services

bp = Blueprint("consents", __name__, url_prefix="/account/consents")


@bp.post("/<consent_id>/revoke")
@sso.login_required
def revoke(consent_id: str):  # type: ignore[no-untyped-def]
    current = sso.current()
    assert current is not None
    if services().consents.revoke(current.user_id, consent_id, ctx=request_context()):
        flash("Access withdrawn. The application has to ask again next time.")
    else:
        flash("That access had already been withdrawn.")
    services().db.commit()
    return redirect(url_for("account.overview"))
