"""Interop: full flows with Authlib's OAuth client against a running provider
(issue 3, done-when 1)."""

from __future__ import annotations

import hashlib
import base64

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.functional.oauth.conftest import callback_params, make_user, new_verifier, register, rp


def _verify_id_token(live, id_token: str, *, client_id: str, nonce: str, access_token: str) -> dict:
    jwks = httpx.get(live.url + "/jwks.json").json()
    keys = KeySet.import_key_set(jwks)
    token = jwt.decode(id_token, keys, algorithms=["ES256"])
    claims = token.claims
    assert token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert claims["iss"] == live.url
    assert claims["aud"] == client_id
    assert claims["nonce"] == nonce
    digest = hashlib.sha256(access_token.encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return claims


def test_confidential_client_code_flow_with_pkce_and_oidc(idp, browser_factory):
    user_id = make_user(idp)
    reg = register(idp)
    client = rp(idp, reg)
    verifier, nonce = new_verifier(), "n-" + new_verifier()[:20]
    url, state = client.create_authorization_url(idp.url + "/authorize", code_verifier=verifier, nonce=nonce)

    response = browser_factory().go(url)
    params = callback_params(response)
    assert response.headers["Location"].startswith(reg.redirect_uri + "?")
    assert params["state"] == state
    assert params["iss"] == idp.url  # RFC 9207

    token = client.fetch_token(
        idp.url + "/token", authorization_response=response.headers["Location"], code_verifier=verifier
    )
    assert token["token_type"].lower() == "bearer" and token["refresh_token"]
    claims = _verify_id_token(idp, token["id_token"], client_id=reg.client_id, nonce=nonce, access_token=token["access_token"])
    assert claims["sub"] == user_id
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:idp:acr:pwd"
    assert isinstance(claims["auth_time"], int)

    info = client.get(idp.url + "/userinfo").json()
    assert info == {"sub": user_id, "email": "user@example.com", "email_verified": True}

    refreshed = client.refresh_token(idp.url + "/token", refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert client.get(idp.url + "/userinfo").status_code == 200
