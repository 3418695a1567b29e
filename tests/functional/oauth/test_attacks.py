"""One test per attack the provider must stop (issue 3, done-when 2), each named after it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from urllib.parse import urlencode

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select, update

from idp.models import AuditEvent, AuthorizationCode
from tests.functional.oauth.conftest import (
    CONFIDENTIAL_REDIRECT,
    callback_params,
    code_of,
    make_user,
    new_verifier,
    obtain,
    register,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token_request(live, reg, **data) -> httpx.Response:
    auth = (reg.client_id, reg.secret) if reg.secret else None
    if not reg.secret:
        data.setdefault("client_id", reg.client_id)
    return httpx.post(live.url + "/token", data=data, auth=auth)


def _userinfo(live, access_token: str) -> httpx.Response:
    return httpx.get(live.url + "/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def _introspect(live, reg, token: str) -> dict:
    response = httpx.post(live.url + "/introspect", data={"token": token}, auth=(reg.client_id, reg.secret))
    assert response.status_code == 200, response.text
    return response.json()


def _authorize_url(live, reg, **overrides) -> str:
    verifier = new_verifier()
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": reg.redirect_uri,
        "scope": "openid email",
        "state": "st-123",
        "nonce": "nonce-" + new_verifier()[:12],
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return live.url + "/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def _events(live, name: str) -> list[AuditEvent]:
    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


# ---------------------------------------------------------------- code replay
def test_code_replay_fails_and_revokes_the_tokens_of_the_first_redemption(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    got = obtain(idp, browser_factory(), reg)
    assert _userinfo(idp, got.token["access_token"]).status_code == 200

    replay = _token_request(
        idp, reg, grant_type="authorization_code", code=code_of(got.location),
        redirect_uri=reg.redirect_uri, code_verifier=got.verifier,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert replay.headers["Cache-Control"] == "no-store"

    # RFC 6749 section 4.1.2: everything issued from that code is revoked.
    assert _userinfo(idp, got.token["access_token"]).status_code == 401
    assert _introspect(idp, reg, got.token["access_token"]) == {"active": False}
    refresh = _token_request(idp, reg, grant_type="refresh_token", refresh_token=got.token["refresh_token"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert _events(idp, "oauth.code_replayed")


# ---------------------------------------------------------------- refresh reuse
def test_refresh_token_reuse_revokes_the_whole_family(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    got = obtain(idp, browser_factory(), reg)
    first = got.token["refresh_token"]
    rotated = _token_request(idp, reg, grant_type="refresh_token", refresh_token=first)
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first

    reuse = _token_request(idp, reg, grant_type="refresh_token", refresh_token=first)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"

    # The family is dead: the legitimate successor and every access token it produced.
    again = _token_request(idp, reg, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert _userinfo(idp, second["access_token"]).status_code == 401
    assert _userinfo(idp, got.token["access_token"]).status_code == 401
    assert _introspect(idp, reg, second["refresh_token"]) == {"active": False}
    events = _events(idp, "oauth.refresh_reused")
    assert len(events) == 1 and events[0].details["client_id"] == reg.client_id


# ---------------------------------------------------------------- PKCE
def test_authorization_without_pkce_is_refused(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    browser = browser_factory()
    browser.sign_in()
    response = browser.http.get(_authorize_url(idp, reg, code_challenge=None, code_challenge_method=None))
    params = callback_params(response)
    assert params["error"] == "invalid_request" and "code" not in params
    assert params["state"] == "st-123" and params["iss"] == idp.url


def test_pkce_plain_is_refused(idp, browser_factory):
    make_user(idp)
    reg = register(idp, public=True)
    browser = browser_factory()
    browser.sign_in()
    verifier = new_verifier()
    response = browser.http.get(_authorize_url(idp, reg, code_challenge=verifier, code_challenge_method="plain"))
    params = callback_params(response)
    assert params["error"] == "invalid_request" and "code" not in params
    # A challenge without a method means plain (RFC 7636 section 4.3): refused as well.
    response = browser.http.get(_authorize_url(idp, reg, code_challenge=verifier, code_challenge_method=None))
    assert callback_params(response)["error"] == "invalid_request"


def test_wrong_pkce_verifier_gets_no_tokens(idp, browser_factory):
    make_user(idp)
    reg = register(idp, public=True)
    browser = browser_factory()
    response = browser.go(_authorize_url(idp, reg))
    code = callback_params(response)["code"]
    result = _token_request(
        idp, reg, grant_type="authorization_code", code=code, redirect_uri=reg.redirect_uri, code_verifier=new_verifier()
    )
    assert result.status_code == 400 and result.json()["error"] == "invalid_grant"


def test_token_request_without_verifier_gets_no_tokens(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    response = browser_factory().go(_authorize_url(idp, reg))
    code = callback_params(response)["code"]
    result = _token_request(idp, reg, grant_type="authorization_code", code=code, redirect_uri=reg.redirect_uri)
    assert result.status_code == 400 and result.json()["error"] == "invalid_request"


# ---------------------------------------------------------------- redirect URIs
@pytest.mark.parametrize(
    "redirect_uri",
    [
        CONFIDENTIAL_REDIRECT + "/extra",  # extra path
        CONFIDENTIAL_REDIRECT + "?next=https://evil.example",  # extra query
        "https://rp.example:8443/callback",  # other port
        "https://RP.example/callback",  # different case (host)
        "https://rp.example/Callback",  # different case (path)
        "https://rp.example/callback/",  # trailing slash
        "https://rp.example.evil.example/callback",  # look-alike host
        "http://rp.example/callback",  # downgraded scheme
    ],
)
def test_redirect_uri_that_is_not_exactly_registered_shows_an_error_page_and_never_redirects(
    idp, browser_factory, redirect_uri
):
    make_user(idp)
    reg = register(idp)
    browser = browser_factory()
    browser.sign_in()
    response = browser.http.get(_authorize_url(idp, reg, redirect_uri=redirect_uri))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "text/html" in response.headers["Content-Type"]
    assert 'data-testid="error-message"' in response.text


def test_public_loopback_redirect_varies_only_in_port(idp, browser_factory):
    make_user(idp)
    reg = register(idp, public=True)  # registered http://127.0.0.1/callback
    browser = browser_factory()
    response = browser.go(_authorize_url(idp, reg, redirect_uri="http://127.0.0.1:53127/callback"))
    assert response.headers["Location"].startswith("http://127.0.0.1:53127/callback?code=")
    for other in ("http://127.0.0.1:53127/callback2", "http://localhost:53127/callback", "http://127.0.0.2:53127/callback"):
        assert browser.http.get(_authorize_url(idp, reg, redirect_uri=other)).status_code == 400


def test_token_request_with_another_redirect_uri_is_refused(idp, browser_factory):
    make_user(idp)
    reg = register(idp, public=True)
    verifier = new_verifier()
    url = _authorize_url(idp, reg, redirect_uri="http://127.0.0.1:5000/callback",
                         code_challenge=create_s256_code_challenge(verifier))
    code = callback_params(browser_factory().go(url))["code"]
    result = _token_request(idp, reg, grant_type="authorization_code", code=code,
                            redirect_uri="http://127.0.0.1:5001/callback", code_verifier=verifier)
    assert result.status_code == 400 and result.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------- client authentication
def test_wrong_client_secret_is_401_invalid_client_with_www_authenticate(idp, browser_factory):
    reg = register(idp, grant_types=["client_credentials"], scope="wallet:read")
    for kwargs in (
        {"auth": (reg.client_id, "not-the-secret")},
        {"data_extra": {"client_id": reg.client_id, "client_secret": "not-the-secret"}},
    ):
        data = {"grant_type": "client_credentials", **kwargs.get("data_extra", {})}
        response = httpx.post(idp.url + "/token", data=data, auth=kwargs.get("auth"))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert response.headers["Cache-Control"] == "no-store"
    good = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials"}, auth=(reg.client_id, reg.secret))
    assert good.status_code == 200 and good.json()["scope"] == ""


# ---------------------------------------------------------------- expiry
def test_expired_code_is_refused(idp, browser_factory):
    make_user(idp)
    reg = register(idp, public=True)
    verifier = new_verifier()
    url = _authorize_url(idp, reg, code_challenge=create_s256_code_challenge(verifier))
    code = callback_params(browser_factory().go(url))["code"]
    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:  # 61 seconds later
        db.execute(update(AuthorizationCode).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        db.commit()
    result = _token_request(idp, reg, grant_type="authorization_code", code=code,
                            redirect_uri=reg.redirect_uri, code_verifier=verifier)
    assert result.status_code == 400 and result.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------- forged tokens
def _forge(live, access_token: str, alg: str, secret: bytes | None) -> str:
    header_b64, payload_b64, _sig = access_token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    header["alg"] = alg
    signing_input = _b64(json.dumps(header).encode()) + "." + payload_b64
    if secret is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def test_access_token_with_alg_none_is_rejected_by_userinfo(idp, browser_factory):
    make_user(idp)
    got = obtain(idp, browser_factory(), register(idp))
    forged = _forge(idp, got.token["access_token"], "none", None)
    response = _userinfo(idp, forged)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_access_token_hs256_signed_with_our_public_key_is_rejected_by_userinfo(idp, browser_factory):
    make_user(idp)
    got = obtain(idp, browser_factory(), register(idp))
    kid = json.loads(base64.urlsafe_b64decode(got.token["access_token"].split(".")[0] + "=="))["kid"]
    jwk = next(k for k in httpx.get(idp.url + "/jwks.json").json()["keys"] if k["kid"] == kid)
    from joserfc.jwk import ECKey

    pem = ECKey.import_key(jwk).as_pem(private=False)
    for secret in (pem, json.dumps(jwk).encode(), jwk["x"].encode()):
        response = _userinfo(idp, _forge(idp, got.token["access_token"], "HS256", secret))
        assert response.status_code == 401, secret
    assert _userinfo(idp, got.token["access_token"]).status_code == 200


# ---------------------------------------------------------------- nonce
def test_id_token_request_without_nonce_is_refused(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    browser = browser_factory()
    browser.sign_in()
    response = browser.http.get(_authorize_url(idp, reg, nonce=None))
    params = callback_params(response)
    assert params["error"] == "invalid_request" and "code" not in params
    assert params["iss"] == idp.url
