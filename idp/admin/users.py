"""Admin API, users (scope admin:users): look up, disable, enable, unlock, force a reset,
end sessions. Mirrors ``idp users show|disable|enable|unlock|force-reset|end-sessions``.

Granting or revoking admin rights is deliberately not here: it stays with the operator's
CLI (``idp users admin``), so a stolen admin token cannot mint more administrators.
"""

from __future__ import annotations

from flask import Response, current_app

from idp.accounts.status import Outcome
from idp.admin.api import bp
from idp.admin.bearer import Caller, require
from idp.admin.inputs import bad, json_object, path_id, query_text
from idp.admin.problems import ApiError, json_response
from idp.models import User
from idp.notify.queue import MailQueue
from idp.web.requests import services

SCOPE = "admin:users"


def _user(user_id: str) -> User:
    checked = path_id(user_id)
    if checked is None:
        raise ApiError(404, "not_found", "No such account.")
    return services().account_status.find(user_id=checked)


def _done(outcome: Outcome) -> Response:
    services().db.commit()
    return json_response(outcome.as_dict())


@bp.get("/users")
@require(SCOPE)
def user_lookup(*, caller: Caller) -> Response:
    email = query_text("email")
    if email is None:
        raise bad("Give the account's address: GET /admin/users?email=...")
    status = services().account_status
    return json_response({"users": [status.describe(status.find(email=email))]})


@bp.get("/users/<user_id>")
@require(SCOPE)
def user_get(user_id: str, *, caller: Caller) -> Response:
    status = services().account_status
    return json_response(status.describe(_user(user_id)))


@bp.post("/users/<user_id>/disable")
@require(SCOPE)
def user_disable(user_id: str, *, caller: Caller) -> Response:
    json_object(())
    return _done(services().account_status.disable(_user(user_id), actor=caller.id, ctx=caller.ctx))


@bp.post("/users/<user_id>/enable")
@require(SCOPE)
def user_enable(user_id: str, *, caller: Caller) -> Response:
    json_object(())
    return _done(services().account_status.enable(_user(user_id), actor=caller.id, ctx=caller.ctx))


@bp.post("/users/<user_id>/unlock")
@require(SCOPE)
def user_unlock(user_id: str, *, caller: Caller) -> Response:
    json_object(())
    return _done(services().account_status.unlock(_user(user_id), actor=caller.id, ctx=caller.ctx))


@bp.post("/users/<user_id>/end-sessions")
@require(SCOPE)
def user_end_sessions(user_id: str, *, caller: Caller) -> Response:
    json_object(())
    return _done(services().account_status.end_sessions(_user(user_id), actor=caller.id, ctx=caller.ctx))


@bp.post("/users/<user_id>/force-reset")
@require(SCOPE)
def user_force_reset(user_id: str, *, caller: Caller) -> Response:
    """As ``idp users force-reset --email``: password unusable, sessions and tokens ended,
    a reset link mailed to the verified address on file (after the commit)."""
    json_object(())
    s = services()
    user = _user(user_id)
    queue = MailQueue(s.registry.mail)  # sent here, so the answer can say whether it left
    mailed = s.force_reset.one(user.email, mail=queue)
    s.audit.record("admin.force_reset", ctx=caller.ctx, user_id=user.id, actor=caller.id, mailed=mailed)
    s.db.commit()  # the link is valid before it is mailed
    result = {"id": user.id, "changed": True, "mailed": mailed}
    try:
        queue.flush()
    except Exception as error:  # noqa: BLE001 - the reset is done and committed; only the mail failed
        # The type only: a mailer error could quote the message, and the message holds the link.
        current_app.logger.error("admin force-reset: the reset mail could not be sent (%s)", type(error).__name__)
        result.update(mailed=False, mail_error="The reset mail could not be sent; the person can ask /reset for one.")
    return json_response(result)
