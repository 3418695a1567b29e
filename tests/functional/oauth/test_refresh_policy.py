"""A refresh token cannot outlive the assurance it was issued under.

Tokens issued while the MFA policy was "optional" (a password-only sign-in, acr pwd)
must not keep being refreshed once the deployment requires a second factor: the refresh
is refused, its family ends, and the person signs in again with the factor.
"""

from __future__ import annotations

import base64
import json

import httpx

from tests.functional.oauth.conftest import make_user, obtain, register, start_server


def acr_of(jwt: str) -> str:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["acr"]


def test_a_password_only_grant_stops_refreshing_when_mfa_becomes_required(
    idp, browser_factory, database_url, redis_url, tmp_path
):
    make_user(idp)
    reg = register(idp, first_party=True)
    got = obtain(idp, browser_factory(), reg)  # the idp fixture runs with mfa_policy=optional
    assert acr_of(got.token["access_token"]) == "urn:idp:acr:pwd"
    # Under "optional" the grant refreshes as before.
    first = httpx.post(idp.url + "/token", auth=(reg.client_id, reg.secret),
                       data={"grant_type": "refresh_token", "refresh_token": got.token["refresh_token"]})
    assert first.status_code == 200, first.text
    refresh = first.json()["refresh_token"]

    # The operator switches the policy: a process started with IDP_MFA_POLICY=required
    # on the same database and keys.
    strict, stop = start_server(database_url, redis_url, tmp_path, mfa_policy="required")
    try:
        refused = httpx.post(strict.url + "/token", auth=(reg.client_id, reg.secret),
                             data={"grant_type": "refresh_token", "refresh_token": refresh})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
        # The family is over: not even a process still on the old policy refreshes it.
        again = httpx.post(idp.url + "/token", auth=(reg.client_id, reg.secret),
                           data={"grant_type": "refresh_token", "refresh_token": refresh})
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    finally:
        stop()  # (it also empties the shared database: checks come before it)


def test_raising_a_clients_minimum_acr_stops_its_weaker_grants_from_refreshing(idp, browser_factory):
    from sqlalchemy import update

    from idp.models import OAuthClient

    make_user(idp)
    reg = register(idp, first_party=True)
    got = obtain(idp, browser_factory(), reg)
    assert acr_of(got.token["access_token"]) == "urn:idp:acr:pwd"
    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:  # the operator now demands MFA for this client
        db.execute(update(OAuthClient).where(OAuthClient.id == reg.client_id).values(min_acr="urn:idp:acr:mfa"))
        db.commit()
    refused = httpx.post(idp.url + "/token", auth=(reg.client_id, reg.secret),
                         data={"grant_type": "refresh_token", "refresh_token": got.token["refresh_token"]})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
