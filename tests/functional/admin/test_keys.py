"""Admin API, signing keys: list, rotate, retire, and what each does to tokens already out.

The emergency path an operator takes when a signing key may have leaked: rotate (a new
key signs), then retire the suspect one; every token it signed, the operator's own
included, stops being accepted at once.
"""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from idp.models import AuditEvent

pytestmark = pytest.mark.parametrize("settings", [{"key_upcoming_seconds": 0}], indirect=True)


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def _jwks_kids(console) -> set[str]:  # type: ignore[no-untyped-def]
    return {k["kid"] for k in console.http.get("/jwks.json").get_json()["keys"]}


def test_list_shows_states_and_dates_and_no_private_material(console):
    token = console.token(scope="admin:keys")
    response = console.call("GET", "/admin/keys", token)
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "EdDSA"}
    assert _kid(token) in {k["kid"] for k in keys if k["state"] == "active"}
    for key in keys:
        assert set(key) >= {"kid", "alg", "state", "created_at", "activated_at", "retired_at"}
        assert not {"d", "private", "private_key_encrypted", "public_jwk"} & set(key)
    assert "PRIVATE" not in response.get_data(as_text=True)


def test_rotate_then_retire_the_old_key_rejects_every_token_it_signed(console):
    old_token = console.token(scope="admin:keys admin:users")
    old_kid = _kid(old_token)

    rotated = console.call("POST", "/admin/keys/rotate", old_token, json={"alg": "ES256"})
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    new_kid = rotated.get_json()["kid"]
    assert new_kid != old_kid and new_kid in _jwks_kids(console)
    # Overlap: the token signed before the rotation still works.
    assert console.call("GET", "/admin/keys", old_token).status_code == 200

    new_token = console.token(scope="admin:keys")
    assert _kid(new_token) == new_kid  # the new key signs now
    retired = console.call("POST", f"/admin/keys/{old_kid}/retire", new_token)
    assert retired.status_code == 200, retired.get_data(as_text=True)
    assert retired.get_json()["state"] == "retired"

    assert old_kid not in _jwks_kids(console)
    refused = console.call("GET", "/admin/users?email=admin@example.com", old_token)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"
    assert console.call("GET", "/admin/keys", new_token).status_code == 200

    registry = console.app.extensions["idp"]
    with registry.sessionmaker() as db:
        events = {e.event: e for e in db.scalars(select(AuditEvent).where(AuditEvent.event.like("admin.key_%")))}
    assert events["admin.key_rotated"].details == {"actor": console.admin_id, "kid": new_kid, "alg": "ES256"}
    assert events["admin.key_retired"].details == {"actor": console.admin_id, "kid": old_kid}


def test_retire_refuses_unknown_keys_and_the_last_active_key(console):
    token = console.token(scope="admin:keys")
    for kid in ("no-such-key", "%00", "x" * 65):
        response = console.call("POST", f"/admin/keys/{kid}/retire", token)
        assert response.status_code == 404, kid
    keys = console.call("GET", "/admin/keys", token).get_json()["keys"]
    (eddsa,) = [k for k in keys if k["alg"] == "EdDSA" and k["state"] == "active"]
    last = console.call("POST", f"/admin/keys/{eddsa['kid']}/retire", token)
    assert last.status_code == 409 and "rotate first" in last.get_json()["error_description"]
    assert eddsa["kid"] in _jwks_kids(console)


def test_rotate_refuses_unknown_algorithms_and_bad_bodies(console):
    token = console.token(scope="admin:keys")
    before = console.call("GET", "/admin/keys", token).get_json()["keys"]
    for body in ({"alg": "HS256"}, {"alg": "none"}, {"alg": 1}, {"alg": None}, {"kid": "x"}, ["ES256"]):
        response = console.call("POST", "/admin/keys/rotate", token, json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"] == "invalid_request"
    assert console.call("GET", "/admin/keys", token).get_json()["keys"] == before
