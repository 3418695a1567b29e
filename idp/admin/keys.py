"""Admin API, signing keys (scope admin:keys): list, rotate, retire. Mirrors
``idp keys list | rotate | retire KID`` through the same KeyService calls."""

from __future__ import annotations

from typing import Any

from flask import Response

from idp.admin.api import bp
from idp.admin.bearer import Caller, require
from idp.admin.inputs import json_object, path_id, text
from idp.admin.problems import ApiError, json_response
from idp.keys import SigningKeyError
from idp.keys.jose import ALGORITHMS
from idp.web.requests import services

SCOPE = "admin:keys"


def describe(key: Any) -> dict[str, Any]:
    """Public facts only (the private half never leaves idp/keys): the same view as
    `idp keys list --json`, state and role as of now."""
    return services().signing_keys.describe(key)


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
        key = s.signing_keys.rotate(alg, ctx=caller.ctx)
    except SigningKeyError as error:
        if alg in ALGORITHMS:  # e.g. a rotation is already pending: retire it first
            raise ApiError(409, "conflict", _one_line(error)) from None
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
        key = s.signing_keys.retire(checked, ctx=caller.ctx)
    except SigningKeyError as error:
        # E.g. the only active key of its algorithm: rotate first.
        raise ApiError(409, "conflict", _one_line(error)) from None
    s.audit.record("admin.key_retired", ctx=caller.ctx, actor=caller.id, kid=key.kid)
    s.db.commit()
    return json_response(describe(key))


def _one_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or ["The key operation failed."])[0][:300]
