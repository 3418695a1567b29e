"""Browser hardening on every page: CSP, framing, referrer, caching, cookies."""

from __future__ import annotations

import functools

import pytest

from idp import create_app
from tests.conftest import make_settings
from tests.fixtures import get_csrf, sign_in, start_session

# Password-only behaviour: the MFA gate (issue 4) is tested in tests/functional/mfa/.
pytestmark = pytest.mark.mfa_policy("optional")

PASSWORD = "correct horse battery staple"
AUTH_PAGES = ["/login", "/register", "/logout", "/verify-email?token=" + "A" * 43, "/account"]


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    """IDP_MFA_POLICY=optional: a password alone reaches the account page (under "required"
    it leads to the second-factor pages, which issue 4's tests cover)."""
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, mfa_policy="optional")


def https_client(app):  # type: ignore[no-untyped-def]
    """A test client whose every request goes to https://login.example.com."""
    client = app.test_client()
    client.open = functools.partial(client.open, base_url="https://login.example.com")  # type: ignore[method-assign]
    return client


def csp(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    policy = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


@pytest.fixture
def signed_in_client(client, make_user):  # type: ignore[no-untyped-def]
    make_user("user@example.com", PASSWORD)
    start_session(client.application, client, "user@example.com")
    return client


@pytest.mark.parametrize("path", AUTH_PAGES + ["/no-such-page", "/healthz"])
def test_strict_csp_on_every_response(signed_in_client, path):
    response = signed_in_client.get(path)
    policy = csp(response)
    header = response.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["base-uri"] == ["'none'"]


@pytest.mark.parametrize("path", AUTH_PAGES)
def test_authentication_pages_are_never_stored(signed_in_client, path):
    response = signed_in_client.get(path)
    assert response.status_code == 200, path
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin")


def test_failed_sign_in_and_error_pages_are_never_stored(client):
    response = sign_in(client, "nobody@example.com", "wrong password guess")
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/verify-email?token=bad").headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(signed_in_client):
    for path in AUTH_PAGES:
        html = signed_in_client.get(path).get_data(as_text=True)
        assert "<script>" not in html and "<style" not in html and " style=" not in html, path
        assert " on" + "click=" not in html, path


def test_no_hsts_on_plain_http_localhost(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_https_issuer_cookies_are_host_prefixed_and_secure(database_url, redis_url, tmp_path, make_user):
    app = create_app(make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path,
                                   issuer="https://login.example.com", mfa_policy="optional"))
    try:
        make_user("user@example.com", PASSWORD)
        client = https_client(app)
        token = get_csrf(client, "/login")
        response = client.post("/login", data={"csrf_token": token, "username": "user@example.com",
                                               "password": PASSWORD},
                               headers={"Referer": "https://login.example.com/login"})
        assert response.status_code == 302
        cookies = response.headers.getlist("Set-Cookie")
        sso = next(c for c in cookies if c.startswith("__Host-idp_sso="))
        assert "Secure" in sso and "HttpOnly" in sso and "Path=/" in sso and "Domain" not in sso
        page = client.get("/logout")
        assert page.status_code == 200
        flow = next(c for c in page.headers.getlist("Set-Cookie") if c.startswith("__Host-idp_flow="))
        assert "Secure" in flow and "HttpOnly" in flow
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        app.extensions["idp"].engine.dispose()


def test_https_form_post_from_another_origin_is_refused(database_url, redis_url, tmp_path, make_user):
    app = create_app(make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path,
                                   issuer="https://login.example.com", mfa_policy="optional"))
    try:
        make_user("user@example.com", PASSWORD)
        client = https_client(app)
        token = get_csrf(client, "/login")
        response = client.post("/login", data={"csrf_token": token, "username": "user@example.com",
                                               "password": PASSWORD},
                               headers={"Referer": "https://evil.example/login"})
        assert response.status_code == 400
    finally:
        app.extensions["idp"].engine.dispose()
