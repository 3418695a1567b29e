"""RFC 8707 resource indicators: the access token's audience is the API asked for.

The shop asks for a token for the wallet; the token says ``aud: <wallet>``, the wallet
may introspect it, and an unknown or widened resource is ``invalid_target``.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.functional.oauth.conftest import make_user, obtain, register

WALLET = "http://127.0.0.1:5002"


def claims_of(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def wallet_api(idp):  # type: ignore[no-untyped-def]
    return register(idp, name="Wallet", grant_types=["client_credentials"], scope="wallet:pay",
                    resource_uri=WALLET, first_party=False)


def test_code_flow_token_for_the_wallet_carries_its_audience_and_the_wallet_may_introspect(idp, browser_factory):
    wallet = wallet_api(idp)
    shop = register(idp, name="Shop", first_party=True, scope="openid email wallet:pay")
    other = register(idp, name="Other API", grant_types=["client_credentials"], scope="x")
    make_user(idp)
    got = obtain(idp, browser_factory(), shop, scope="openid wallet:pay", resource=WALLET)
    access = got.token["access_token"]
    claims = claims_of(access)
    assert claims["aud"] == WALLET
    assert claims["client_id"] == shop.client_id
    # The ID token is still for the shop.
    assert claims_of(got.token["id_token"])["aud"] == shop.client_id

    # The wallet (the API named by aud) may introspect it; an unrelated service may not.
    seen = httpx.post(idp.url + "/introspect", data={"token": access}, auth=(wallet.client_id, wallet.secret))
    assert seen.status_code == 200 and seen.json()["active"] is True and seen.json()["aud"] == WALLET
    hidden = httpx.post(idp.url + "/introspect", data={"token": access}, auth=(other.client_id, other.secret))
    assert hidden.json() == {"active": False}

    # Refresh keeps the audience; naming another resource is refused without burning it.
    wider = httpx.post(idp.url + "/token", data={
        "grant_type": "refresh_token", "refresh_token": got.token["refresh_token"], "resource": idp.url + "/admin",
        "client_id": shop.client_id}, auth=(shop.client_id, shop.secret))
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_target"
    again = httpx.post(idp.url + "/token", data={
        "grant_type": "refresh_token", "refresh_token": got.token["refresh_token"]}, auth=(shop.client_id, shop.secret))
    assert again.status_code == 200, again.text
    assert claims_of(again.json()["access_token"])["aud"] == WALLET


def test_without_resource_the_audience_is_the_client(idp, browser_factory):
    shop = register(idp, name="Shop", first_party=True)
    make_user(idp)
    got = obtain(idp, browser_factory(), shop)
    assert claims_of(got.token["access_token"])["aud"] == shop.client_id


def test_unknown_or_malformed_resource_is_invalid_target_at_authorize(idp, browser_factory):
    shop = register(idp, name="Shop", first_party=True)
    make_user(idp)
    browser = browser_factory()
    for resource in ("https://evil.example/api", "not a uri", WALLET + "#frag", "ftp://127.0.0.1/x"):
        url = (f"{idp.url}/authorize?response_type=code&client_id={shop.client_id}&redirect_uri={shop.redirect_uri}"
               f"&scope=openid&state=s1&nonce=n1&code_challenge={'a' * 43}&code_challenge_method=S256")
        response = browser.go(url + "&" + httpx.QueryParams({"resource": resource}).__str__(), sign_in=True)
        assert response.status_code in (302, 303), response.text
        params = parse_qs(urlsplit(response.headers["Location"]).query)
        assert params["error"] == ["invalid_target"], params
        assert params["state"] == ["s1"] and params["iss"] == [idp.url]


def test_client_credentials_resource_and_narrowing(idp):
    wallet = wallet_api(idp)
    svc = register(idp, name="Payouts", grant_types=["client_credentials"], scope="wallet:pay", first_party=True)
    ok = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials", "resource": WALLET},
                    auth=(svc.client_id, svc.secret))
    assert ok.status_code == 200, ok.text
    assert claims_of(ok.json()["access_token"])["aud"] == WALLET
    both = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials",
                                                "resource": [WALLET, idp.url + "/admin"]},
                      auth=(svc.client_id, svc.secret))
    assert both.status_code == 200, both.text
    assert claims_of(both.json()["access_token"])["aud"] == [WALLET, idp.url + "/admin"]
    unknown = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials",
                                                   "resource": "https://elsewhere.example/"},
                         auth=(svc.client_id, svc.secret))
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
    assert wallet.client_id  # registered so that WALLET is a known resource


def test_code_exchange_may_narrow_but_not_widen(idp, browser_factory):
    wallet_api(idp)
    shop = register(idp, name="Shop", first_party=True, scope="openid wallet:pay")
    make_user(idp)
    browser = browser_factory()
    # Ask for the wallet at /authorize, then for the admin API at /token: refused.
    from tests.functional.oauth.conftest import new_verifier, rp

    client = rp(idp, shop, scope="openid wallet:pay")
    verifier = new_verifier()
    url, _ = client.create_authorization_url(idp.url + "/authorize", code_verifier=verifier, nonce="n-1",
                                             resource=WALLET)
    location = browser.go(url).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    widened = httpx.post(idp.url + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": shop.redirect_uri,
        "code_verifier": verifier, "resource": idp.url + "/admin"}, auth=(shop.client_id, shop.secret))
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_target"
