"""Admin API, signing keys (scope admin:keys): list, rotate, retire. Mirrors
``idp keys list | rotate | retire KID`` through the same KeyService calls."""

from __future__ import annotations

from typing import Any

from flask import Response

from idp.accounts.status import iso
from idp.admin.api import bp
from idp.admin.bearer import Caller, require
from idp.admin.inputs import json_object, path_id, text
from idp.admin.problems import ApiError, json_response
from idp.keys import SigningKeyError
from idp.web.requests import services

SCOPE = "admin:keys"
_DATES = ("created_at", "activates_at", "activated_at", "retire_at", "retired_at")


def describe(key: Any) -> dict[str, Any]:
    """Public facts only: the private half never leaves idp/keys."""
    result: dict[str, Any] = {"kid": key.kid, "alg": key.alg, "state": key.state}
    for name in _DATES:
        # getattr: the key lifecycle (idp/keys) adds its dates as it grows.
        result[name] = iso(getattr(key, name, None))
    return result


@bp.get("/keys")
@require(SCOPE)
def keys_list(*, caller: Caller) -> Response:
    return json_response({"keys": [describe(k) for k in services().signing_keys.list()]})


@bp.post("/keys/rotate")
@require(SCOPE)
def keys_rotate(*, caller: Caller) -> Response:
    body = json_object(("alg",))
    alg = text(body, "alg", max_length=16, default="ES256")
    s = services()
    try:
        key = s.signing_keys.rotate(alg)
    except SigningKeyError as error:
        raise ApiError(400, "invalid_request", _one_line(error)) from None
    s.audit.record("admin.key_rotated", ctx=caller.ctx, actor=caller.id, kid=key.kid, alg=key.alg)
    s.db.commit()
    return json_response(describe(key))


@bp.post("/keys/<kid>/retire")
@require(SCOPE)
def key_retire(kid: str, *, caller: Caller) -> Response:
    json_object(())
    s = services()
    checked = path_id(kid)
    if checked is None or not any(k.kid == checked for k in s.signing_keys.list()):
        raise ApiError(404, "not_found", "No such signing key.")
    try:
        key = s.signing_keys.retire(checked)
    except SigningKeyError as error:
        # E.g. the only active key of its algorithm: rotate first.
        raise ApiError(409, "conflict", _one_line(error)) from None
    s.audit.record("admin.key_retired", ctx=caller.ctx, actor=caller.id, kid=key.kid)
    s.db.commit()
    return json_response(describe(key))


def _one_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or ["The key operation failed."])[0][:300]
