"""prompt, max_age, login_hint, acr_values, consent, step-up and logout through the
authorization endpoint, on a live server."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select

from idp.assurance import ACR_MFA
from idp.context import RequestContext
from idp.models import User
from tests.functional.oauth.conftest import (
    Browser,
    callback_params,
    make_user,
    new_verifier,
    obtain,
    register,
    start_server,
)


def _url(live, reg, **overrides) -> str:
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": reg.redirect_uri,
        "scope": "openid email",
        "state": "s",
        "nonce": new_verifier()[:16],  # fresh: a reused nonce is refused
        "code_challenge": create_s256_code_challenge(new_verifier()),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return live.url + "/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def _next_of(response: httpx.Response) -> tuple[str, dict[str, str]]:
    location = urlsplit(response.headers["Location"])
    return location.path, {k: v[0] for k, v in parse_qs(location.query).items()}


def test_prompt_none_without_a_session_returns_login_required(idp, browser_factory):
    reg = register(idp)
    response = browser_factory().http.get(_url(idp, reg, prompt="none"))
    params = callback_params(response)
    assert params == {"error": "login_required", "state": "s", "iss": idp.url}


def test_prompt_none_without_consent_returns_consent_required(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    browser = browser_factory()
    browser.sign_in()
    assert callback_params(browser.http.get(_url(idp, reg, prompt="none")))["error"] == "consent_required"


def test_unauthenticated_request_goes_to_sign_in_with_login_hint_and_comes_back(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True)
    browser = browser_factory()
    response = browser.http.get(_url(idp, reg, login_hint="user@example.com"))
    path, query = _next_of(response)
    assert path == "/login" and query["login_hint"] == "user@example.com"
    assert query["next"].startswith("/authorize?")
    page = browser.http.get(response.headers["Location"])
    assert 'value="user@example.com"' in page.text
    # The sign-in page may post to the client's origin at the end of its redirect chain.
    assert "https://rp.example" in page.headers["Content-Security-Policy"]
    signed_in = browser.sign_in(next_url=query["next"])
    assert signed_in.headers["Location"] == query["next"]
    final = browser.http.get(query["next"])
    assert "code" in callback_params(final)  # first party: no consent page


def test_consent_is_remembered_per_scope_set_and_prompt_consent_asks_again(idp, browser_factory):
    make_user(idp)
    reg = register(idp, scope="openid email offline_access")
    browser = browser_factory()
    browser.sign_in()
    page = browser.http.get(_url(idp, reg, scope="openid"))
    assert page.status_code == 200 and 'name="decision" value="allow"' in page.text
    assert "https://rp.example" in page.headers["Content-Security-Policy"].split("form-action")[1].split(";")[0]
    assert "code" in callback_params(browser.go(_url(idp, reg, scope="openid")))
    # Remembered: no page for the same (or a smaller) scope set.
    assert "code" in callback_params(browser.http.get(_url(idp, reg, scope="openid")))
    # A larger scope set asks again; prompt=consent always asks.
    assert browser.http.get(_url(idp, reg, scope="openid email")).status_code == 200
    assert browser.http.get(_url(idp, reg, scope="openid", prompt="consent")).status_code == 200


def test_denied_consent_returns_access_denied(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    params = callback_params(browser_factory().go(_url(idp, reg), consent="deny"))
    assert params["error"] == "access_denied" and "code" not in params
    assert params["state"] == "s" and params["iss"] == idp.url


def test_prompt_login_and_max_age_send_a_signed_in_user_to_sign_in_again(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True)
    browser = browser_factory()
    browser.sign_in()
    assert "code" in callback_params(browser.http.get(_url(idp, reg)))
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        time.sleep(1.1)  # auth_time has one-second resolution
        response = browser.http.get(_url(idp, reg, **extra))
        path, query = _next_of(response)
        assert path == "/login", extra
        # The way back drops what the new sign-in satisfies (no endless loop).
        assert "prompt=login" not in query["next"] and "max_age" not in query["next"]
        assert "code" in callback_params(browser.go(_url(idp, reg, **extra)))


def test_acr_values_above_the_session_send_to_step_up(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True)
    browser = browser_factory()
    browser.sign_in()
    response = browser.http.get(_url(idp, reg, acr_values=ACR_MFA))
    path, query = _next_of(response)
    assert path == "/mfa" and query["next"].startswith("/authorize?")
    none = browser.http.get(_url(idp, reg, acr_values=ACR_MFA, prompt="none"))
    assert callback_params(none)["error"] == "interaction_required"
    # Unknown values are voluntary: ignored.
    assert "code" in callback_params(browser.http.get(_url(idp, reg, acr_values="urn:example:unknown")))


def test_client_minimum_acr_sends_a_password_session_to_step_up(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True, min_acr=ACR_MFA)
    browser = browser_factory()
    browser.sign_in()
    path, _ = _next_of(browser.http.get(_url(idp, reg)))
    assert path == "/mfa"


def test_under_required_mfa_policy_a_password_only_session_gets_no_code(database_url, redis_url, tmp_path):
    live, stop = start_server(database_url, redis_url, tmp_path, mfa_policy="required")
    try:
        make_user(live)
        reg = register(live, first_party=True)
        registry = live.app.extensions["idp"]
        with registry.sessionmaker() as db:  # a password-only sign-in, through the real service
            s = registry.services(db)
            user = db.scalar(select(User))
            _record, secret = s.sessions.start(user, amr=["pwd"], ctx=RequestContext())
            db.commit()
        browser = Browser(live)
        browser.http.cookies.set("idp_sso", secret)  # the SSO cookie of that sign-in
        response = browser.http.get(_url(live, reg))
        assert response.status_code == 302
        path, query = _next_of(response)
        assert path == "/mfa" and query["next"].startswith("/authorize?")
        assert "code=" not in response.headers["Location"]
        browser.close()
    finally:
        stop()


def test_withdrawing_consent_on_the_account_page_revokes_the_clients_tokens(idp, browser_factory):
    make_user(idp)
    reg = register(idp, name="Coffee Shop")
    browser = browser_factory()
    got = obtain(idp, browser, reg)
    account = browser.http.get("/account")
    assert "Coffee Shop" in account.text and 'data-testid="revoke-consent"' in account.text
    action = re.search(r'action="(/account/consents/[^"]+/revoke)"', account.text).group(1)
    response = browser.http.post(action, data={"csrf_token": browser.csrf(account.text)})
    assert response.status_code == 302
    assert "Coffee Shop" not in browser.http.get("/account").text
    assert got.client.get(idp.url + "/userinfo").status_code == 401
    refresh = httpx.post(idp.url + "/token", auth=(reg.client_id, reg.secret),
                         data={"grant_type": "refresh_token", "refresh_token": got.token["refresh_token"]})
    assert refresh.json()["error"] == "invalid_grant"


def test_rp_initiated_logout_ends_the_session_and_revokes_its_tokens(idp, browser_factory):
    make_user(idp)
    reg = register(idp, post_logout_redirect_uris=["https://rp.example/bye"])
    browser = browser_factory()
    got = obtain(idp, browser, reg)
    query = urlencode({
        "id_token_hint": got.token["id_token"],
        "post_logout_redirect_uri": "https://rp.example/bye",
        "state": "bye-state",
    })
    page = browser.http.get("/end-session?" + query)
    assert page.status_code == 200 and 'name="csrf_token"' in page.text  # asks first
    assert "https://rp.example" in page.headers["Content-Security-Policy"]
    assert got.client.get(idp.url + "/userinfo").status_code == 200
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    response = browser.http.post(action, data={"csrf_token": browser.csrf(page.text), "decision": "signout"})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://rp.example/bye?state=bye-state"
    assert got.client.get(idp.url + "/userinfo").status_code == 401
    assert browser.http.get("/account").status_code == 302  # signed out


def test_logout_redirect_needs_a_registered_uri(idp, browser_factory):
    make_user(idp)
    reg = register(idp, post_logout_redirect_uris=["https://rp.example/bye"])
    browser = browser_factory()
    got = obtain(idp, browser, reg)
    query = urlencode({"id_token_hint": got.token["id_token"], "post_logout_redirect_uri": "https://evil.example/"})
    page = browser.http.get("/end-session?" + query)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    response = browser.http.post(action, data={"csrf_token": browser.csrf(page.text)})
    assert response.status_code == 200 and 'data-testid="signed-out"' in response.text
