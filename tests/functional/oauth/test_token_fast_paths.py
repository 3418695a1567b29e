"""The shortcuts that make the token endpoint fast (issue 3, done-when 4) keep every
promise the slow path made: a client_credentials token has no row but RFC 7009 still
switches it off at once, on every instance; a disabled client stops at once; a refresh
request refused for its scope does not burn the token; a disabled account's refresh
token is refused and not consumed."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from sqlalchemy import select, update

from idp.db import utcnow
from idp.models import IssuedAccessToken, OAuthClient, RefreshToken, User
from idp.oauth.store import _CLAIM_REFRESH
from idp import create_app
from tests.conftest import make_settings
from tests.functional.oauth.conftest import make_user, obtain, register


def _cc_token(live, svc, **data) -> str:
    response = httpx.post(live.url + "/token", data={"grant_type": "client_credentials", "scope": "api", **data},
                          auth=(svc.client_id, svc.secret))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _introspect(live, reg, token: str) -> dict:
    response = httpx.post(live.url + "/introspect", data={"token": token}, auth=(reg.client_id, reg.secret))
    assert response.status_code == 200, response.text
    return response.json()


def _rows(live, model, *where):  # type: ignore[no-untyped-def]
    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        return list(db.scalars(select(model).where(*where)))


def _jti(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]


def test_a_client_credentials_token_has_no_row_and_its_revocation_holds_on_every_instance(
    idp, database_url, redis_url, tmp_path
):
    svc = register(idp, grant_types=["client_credentials"], scope="api", first_party=True)
    token = _cc_token(idp, svc)
    jti = _jti(token)
    assert _rows(idp, IssuedAccessToken, IssuedAccessToken.jti == jti) == []  # nothing written to issue it
    assert _introspect(idp, svc, token)["active"] is True

    # A second instance: its own app, engine and caches, the same database and keys.
    other = create_app(make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path,
                                     mfa_policy="optional", issuer=idp.settings.issuer))
    try:
        second = other.test_client()

        def introspect_there() -> dict:
            response = second.post("/introspect", data={"token": token}, headers={"Authorization": basic})
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.get_json()

        basic = "Basic " + base64.b64encode(f"{svc.client_id}:{svc.secret}".encode()).decode()
        assert introspect_there()["active"] is True
        revoked = httpx.post(idp.url + "/revoke", data={"token": token}, auth=(svc.client_id, svc.secret))
        assert revoked.status_code == 200
        # RFC 7009: at once, here and on the other instance (the deny-list is the database).
        assert _introspect(idp, svc, token) == {"active": False}
        assert introspect_there() == {"active": False}
    finally:
        other.extensions["idp"].engine.dispose()
    [row] = _rows(idp, IssuedAccessToken, IssuedAccessToken.jti == jti)
    assert row.revoked_at is not None and row.user_id is None and row.client_id == svc.client_id
    # Revoking it again is still a 200 and changes nothing.
    again = httpx.post(idp.url + "/revoke", data={"token": token}, auth=(svc.client_id, svc.secret))
    assert again.status_code == 200 and len(_rows(idp, IssuedAccessToken, IssuedAccessToken.jti == jti)) == 1
    # Another token of the same client is unaffected.
    assert _introspect(idp, svc, _cc_token(idp, svc))["active"] is True


def test_a_token_forged_to_look_like_a_client_token_needs_our_signature(idp):
    # The no-row rule trusts the claims only because the signature is ours.
    svc = register(idp, grant_types=["client_credentials"], scope="api", first_party=True)
    header, payload, signature = _cc_token(idp, svc).split(".")
    forged = header + "." + payload.rstrip("=") + "A." + signature
    assert _introspect(idp, svc, forged) == {"active": False}


def test_a_disabled_client_stops_at_once_and_its_tokens_with_it(idp):
    svc = register(idp, grant_types=["client_credentials"], scope="api", first_party=True)
    reader = register(idp, grant_types=["client_credentials"], scope="api", first_party=True, name="Reader")
    token = _cc_token(idp, svc)
    assert _introspect(idp, reader, token)["active"] is True
    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:
        db.get(OAuthClient, svc.client_id).disabled_at = utcnow()
        db.commit()
    refused = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials", "scope": "api"},
                         auth=(svc.client_id, svc.secret))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert _introspect(idp, reader, token) == {"active": False}


def test_a_refresh_refused_for_a_wider_scope_or_another_resource_does_not_burn_the_token(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True)
    got = obtain(idp, browser_factory(), reg)
    refresh = got.token["refresh_token"]
    auth = (reg.client_id, reg.secret)
    wider = httpx.post(idp.url + "/token", auth=auth,
                       data={"grant_type": "refresh_token", "refresh_token": refresh, "scope": "openid email admin"})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    elsewhere = httpx.post(idp.url + "/token", auth=auth, data={
        "grant_type": "refresh_token", "refresh_token": refresh, "resource": "https://not-granted.example/api"})
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_target"
    rotated = httpx.post(idp.url + "/token", auth=auth, data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != refresh
    # The rotation wrote the successor and the access token's record, nothing more.
    family = _rows(idp, RefreshToken, RefreshToken.client_id == reg.client_id)
    assert len(family) == 2 and len({r.family_id for r in family}) == 1
    assert _rows(idp, IssuedAccessToken, IssuedAccessToken.jti == _jti(rotated.json()["access_token"]))


def test_a_disabled_accounts_refresh_token_is_refused_and_not_consumed(idp, browser_factory):
    user_id = make_user(idp)
    reg = register(idp, first_party=True)
    refresh = obtain(idp, browser_factory(), reg).token["refresh_token"]
    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:  # not through the service: its refresh rows stay live
        db.execute(update(User).where(User.id == user_id).values(disabled_at=utcnow()))
        db.commit()
    refused = httpx.post(idp.url + "/token", auth=(reg.client_id, reg.secret),
                         data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    [row] = _rows(idp, RefreshToken, RefreshToken.client_id == reg.client_id)
    assert row.used_at is None and row.revoked_at is None


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_rotation_claims_and_reads_in_one_statement(dialect):
    from sqlalchemy.dialects import postgresql, sqlite

    sql = str(_CLAIM_REFRESH.compile(dialect=(postgresql if dialect == "postgresql" else sqlite).dialect()))
    assert sql.startswith("UPDATE oauth_refresh_tokens SET used_at") and " RETURNING " in sql
    assert "used_at IS NULL" in sql and "revoked_at IS NULL" in sql and "disabled_at IS NULL" in sql
