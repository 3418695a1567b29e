"""MFA through the authorization endpoint, on a live server with IDP_MFA_POLICY=required.

Done 4: a password-only session gets no code (hence no token, no refresh, no consent
screen) from /authorize, whatever the client or prompt. Done 5: a client that requires
phishing-resistant assurance sends a password + TOTP session to a passkey step-up, and
the ID token's acr/amr say what happened. The relying party is Authlib's OAuth client.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from idp.assurance import ACR_MFA, ACR_PHR
from tests.functional.mfa.flows import totp_code
from tests.functional.oauth.conftest import (
    Browser,
    callback_params,
    make_user,
    new_verifier,
    register,
    rp,
    start_server,
)
from tests.softauthn import SoftAuthenticator

SECRET_RE = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')


@pytest.fixture
def live(database_url, redis_url, tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    server, stop = start_server(database_url, redis_url, tmp_path, mfa_policy="required")
    try:
        yield server
    finally:
        stop()


def _csrf(browser: Browser, path: str = "/login") -> str:
    return browser.csrf(browser.http.get(path).text)


def _json(browser: Browser, path: str, body: dict, token: str):  # type: ignore[no-untyped-def]
    return browser.http.post(path, json=body, headers={"X-CSRFToken": token, "Accept": "application/json"})


def _enrol_totp_and_passkey(live, browser: Browser) -> tuple[str, SoftAuthenticator]:  # type: ignore[no-untyped-def]
    assert browser.sign_in().status_code == 302
    token = _csrf(browser, "/mfa/setup?next=/account")
    assert browser.http.post("/mfa/setup/email", data={"csrf_token": token, "next": "/account"}).status_code == 200
    link = live.outbox.last_link("user@example.com", "/mfa/email-proof")
    page = browser.http.get(link.removeprefix(live.url))
    proof = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    assert browser.http.post("/mfa/email-proof", data={"csrf_token": browser.csrf(page.text), "token": proof,
                                                       "next": "/account"}).status_code == 302
    secret = SECRET_RE.search(browser.http.get("/mfa/totp/new?next=/account").text).group(1)
    done = browser.http.post("/mfa/totp/new", data={"csrf_token": token, "code": totp_code(secret), "next": "/account"})
    assert done.status_code == 302
    key = SoftAuthenticator(origin=live.url, rp_id="localhost")
    options = _json(browser, "/mfa/passkeys/options", {}, token)
    assert options.status_code == 200, options.text
    verify = _json(browser, "/mfa/passkeys/verify", {"credential": key.create(options.json()["publicKey"])}, token)
    assert verify.status_code == 200, verify.text
    return secret, key


def _claims(id_token: str) -> dict:
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _follow(browser: Browser, response):  # type: ignore[no-untyped-def]
    """Follow redirects on the provider; stop at the client or at a page."""
    for _ in range(10):
        if response.status_code not in (302, 303):
            return response
        location = urljoin(str(response.url), response.headers["Location"])
        if not location.startswith(browser.live.url):
            return response
        response = browser.http.get(location)
    raise AssertionError("redirect loop")


@pytest.mark.parametrize("first_party", [True, False], ids=["first-party", "third-party"])
@pytest.mark.parametrize("prompt", [None, "consent", "none"])
def test_password_only_session_gets_no_code_from_authorize(live, first_party, prompt):
    make_user(live)
    reg = register(live, first_party=first_party)
    browser = Browser(live)
    try:
        assert browser.sign_in().status_code == 302
        client = rp(live, reg)
        url, _state = client.create_authorization_url(live.url + "/authorize", code_verifier=new_verifier(),
                                                      nonce="n-" + new_verifier()[:12],
                                                      **({"prompt": prompt} if prompt else {}))
        response = browser.http.get(url)
        assert response.status_code == 302
        location = response.headers["Location"]
        if prompt == "none":
            assert callback_params(response)["error"] == "interaction_required"
        else:
            assert location.startswith("/mfa?next=%2Fauthorize")
            page = _follow(browser, response)
            assert 'name="decision"' not in page.text  # no consent screen either
        assert "code=" not in location
    finally:
        browser.close()


def test_wallet_requires_a_passkey_step_up_after_password_and_totp(live):
    make_user(live)
    shop = register(live, first_party=True)
    wallet = register(live, first_party=True, name="Wallet", min_acr=ACR_PHR)
    owner = Browser(live)
    secret, key = _enrol_totp_and_passkey(live, owner)
    owner.close()

    browser = Browser(live)
    try:
        assert browser.sign_in().status_code == 302
        # The shop (baseline assurance): password + TOTP is enough.
        shop_rp = rp(live, shop)
        verifier, nonce = new_verifier(), "n-" + new_verifier()[:12]
        url, _ = shop_rp.create_authorization_url(live.url + "/authorize", code_verifier=verifier, nonce=nonce)
        step = browser.http.get(url)
        assert step.headers["Location"].startswith("/mfa?")
        page = browser.http.get(step.headers["Location"])
        assert 'name="code"' in page.text
        next_url = parse_qs(urlsplit(step.headers["Location"]).query)["next"][0]
        done = browser.http.post("/mfa", data={"csrf_token": browser.csrf(page.text), "method": "totp",
                                               "code": totp_code(secret, steps=1), "next": next_url})
        response = _follow(browser, done)
        token = shop_rp.fetch_token(live.url + "/token", authorization_response=response.headers["Location"],
                                    code_verifier=verifier)
        claims = _claims(token["id_token"])
        assert claims["acr"] == ACR_MFA and set(claims["amr"]) == {"pwd", "otp", "mfa"}

        # The wallet requires phishing-resistant assurance: a passkey step-up, TOTP refused.
        wallet_rp = rp(live, wallet)
        verifier, nonce = new_verifier(), "n-" + new_verifier()[:12]
        url, _ = wallet_rp.create_authorization_url(live.url + "/authorize", code_verifier=verifier, nonce=nonce)
        step = browser.http.get(url)
        assert step.headers["Location"].startswith("/mfa?")
        page = browser.http.get(step.headers["Location"])
        assert page.status_code == 200, page.status_code
        assert 'data-testid="passkey-second-factor"' in page.text and 'name="code"' not in page.text
        next_url = parse_qs(urlsplit(step.headers["Location"]).query)["next"][0]
        refused = browser.http.post("/mfa", data={"csrf_token": browser.csrf(page.text), "method": "totp",
                                                  "code": totp_code(secret, steps=1), "next": next_url})
        assert refused.status_code == 400
        token_value = browser.csrf(page.text)
        options = _json(browser, "/mfa/passkey/options", {}, token_value)
        assertion = key.get(options.json()["publicKey"])
        verified = _json(browser, "/mfa/passkey/verify", {"credential": assertion, "next": next_url}, token_value)
        assert verified.status_code == 200 and verified.json()["redirect"] == next_url
        response = _follow(browser, browser.http.get(next_url))
        params = callback_params(response)
        assert "code" in params
        token = wallet_rp.fetch_token(live.url + "/token", authorization_response=response.headers["Location"],
                                      code_verifier=verifier)
        claims = _claims(token["id_token"])
        assert claims["acr"] == ACR_PHR
        assert set(claims["amr"]) == {"pwd", "otp", "hwk", "user", "mfa"}
    finally:
        browser.close()


def test_acr_values_phr_without_a_passkey_offers_no_weaker_method(live):
    make_user(live)
    reg = register(live, first_party=True)
    browser = Browser(live)
    try:
        assert browser.sign_in().status_code == 302
        client = rp(live, reg)
        url, _ = client.create_authorization_url(live.url + "/authorize", code_verifier=new_verifier(),
                                                 nonce="n-x", acr_values=ACR_PHR)
        step = browser.http.get(url)
        assert step.headers["Location"].startswith("/mfa?")
        # No factor at all yet: enrolment (behind the mailed proof), never a code.
        page = _follow(browser, step)
        assert page.status_code == 200 and 'data-testid="send-proof"' in page.text
    finally:
        browser.close()


def test_passkey_only_sign_in_reaches_the_wallet_directly(live):
    make_user(live)
    wallet = register(live, first_party=True, name="Wallet", min_acr=ACR_PHR)
    owner = Browser(live)
    _secret, key = _enrol_totp_and_passkey(live, owner)
    owner.close()
    browser = Browser(live)
    try:
        wallet_rp = rp(live, wallet)
        verifier = new_verifier()
        url, _ = wallet_rp.create_authorization_url(live.url + "/authorize", code_verifier=verifier, nonce="n-pk")
        login = browser.http.get(url)
        assert login.headers["Location"].startswith("/login?")
        next_url = parse_qs(urlsplit(login.headers["Location"]).query)["next"][0]
        token_value = _csrf(browser, login.headers["Location"])
        options = _json(browser, "/passkey/signin/options", {}, token_value)
        verified = _json(browser, "/passkey/signin/verify",
                         {"credential": key.get(options.json()["publicKey"]), "next": next_url}, token_value)
        assert verified.status_code == 200
        response = _follow(browser, browser.http.get(verified.json()["redirect"]))
        token = wallet_rp.fetch_token(live.url + "/token", authorization_response=response.headers["Location"],
                                      code_verifier=verifier)
        claims = _claims(token["id_token"])
        assert claims["acr"] == ACR_PHR and set(claims["amr"]) == {"hwk", "user", "mfa"}
    finally:
        browser.close()
