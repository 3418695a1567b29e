"""Named rate limits: every endpoint class limited, 429 with Retry-After, a page a person
can act on (JSON for programs), per client address, in memory or Redis."""

from __future__ import annotations

import pytest
from flask import Flask

from idp.protection.ratelimits import FACTOR, INTROSPECTION, LIMITS, LOGIN, MFA, RESET, SIGNUP, TOKEN, limit_for

from .conftest import client_at


def no_csrf(app: Flask) -> Flask:
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def test_sign_in_flood_gets_429_with_retry_after_and_a_readable_page(make_app):
    app = no_csrf(make_app(rate_limit_login="3 per minute"))
    client = client_at(app, "127.0.0.90")
    codes = [client.post("/login", data={"username": "a@example.com", "password": "x"}).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    response = client.post("/login", data={"username": "a@example.com", "password": "x"})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 61  # at most the window, rounded up
    text = response.get_data(as_text=True)
    assert "Too many sign-in attempts from your network" in text and "then try again" in text
    assert response.mimetype == "text/html"
    # Another address has its own budget; showing the form (GET) is never limited.
    assert client_at(app, "127.0.0.91").post("/login", data={"username": "a@example.com", "password": "x"}).status_code == 401
    assert client.get("/login").status_code == 200
    assert app.extensions["idp"].protection.metrics.value("idp_rate_limited_total", limit="ip.login") == 2


def test_programs_get_json(make_app):
    app = no_csrf(make_app(rate_limit_login="1 per minute"))
    client = client_at(app, "127.0.0.92")
    client.post("/login", data={"username": "a@example.com", "password": "x"})
    response = client.post("/login", data={"username": "a@example.com", "password": "x"},
                           headers={"Accept": "application/json"})
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert response.get_json()["error"] == "too_many_requests"


def test_sign_up_flood_is_limited(make_app):
    app = no_csrf(make_app(rate_limit_signup="2 per minute"))
    client = client_at(app, "127.0.0.93")
    data = {"username": "new@example.com", "password": "x"}
    assert [client.post("/register", data=data).status_code for _ in range(3)][-1] == 429


def test_sign_in_link_requests_are_limited(make_app):
    app = no_csrf(make_app(rate_limit_signin_link="2 per minute"))
    client = client_at(app, "127.0.0.94")
    data = {"username": "new@example.com"}
    assert [client.post("/login/link", data=data).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("auth.login", LOGIN),
        ("mfa.passkey_signin_verify", LOGIN),
        ("signup.register", SIGNUP),
        ("mfa.verify_code", MFA),
        ("mfa.passkey_second_factor_verify", MFA),
        ("mfa.totp_new", FACTOR),
        ("mfa.passkey_register_options", FACTOR),
        ("mfa.setup", FACTOR),
        ("password.reset_request", RESET),
        ("reset.request", RESET),
        ("oauth.token", TOKEN),
        ("oauth.revoke", TOKEN),
        ("oauth.introspect", INTROSPECTION),
        ("account.overview", None),
        ("health.healthz", None),
        ("oauth.authorize", None),
    ],
)
def test_each_endpoint_class_has_its_named_limit(endpoint, expected):
    assert limit_for(endpoint) == expected


def test_every_registered_view_of_a_limited_class_is_wrapped(make_app):
    app = make_app()
    applied = app.extensions["rate_limits"]["applied"]
    for endpoint in app.view_functions:
        named = limit_for(endpoint)
        assert applied.get(endpoint) == (named.name if named else None), endpoint
    assert applied["auth.login"] == "ip.login"
    assert {named.name for _, named in LIMITS} >= {"ip.login", "ip.mfa", "ip.signup", "ip.reset", "ip.token",
                                                   "ip.introspection", "ip.factor", "ip.signin_link"}


def test_a_view_registered_after_init_app_is_still_limited(make_app):
    app = no_csrf(make_app(rate_limit_reset="1 per minute"))

    def reset_request():  # type: ignore[no-untyped-def]
        return "sent"

    app.add_url_rule("/late-reset", "late.reset_request", reset_request, methods=["POST"])
    client = client_at(app, "127.0.0.95")
    assert [client.post("/late-reset").status_code for _ in range(2)] == [200, 429]


def test_api_limits_answer_in_json(make_app):
    app = no_csrf(make_app(rate_limit_token="1 per minute"))

    def token():  # type: ignore[no-untyped-def]
        return {"access_token": "x"}

    app.add_url_rule("/test-token", "test.token", token, methods=["POST"])
    client = client_at(app, "127.0.0.96")
    assert client.post("/test-token").status_code == 200
    response = client.post("/test-token")
    assert response.status_code == 429 and response.get_json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_rate_limits_survive_a_redis_outage_in_process_memory(make_app):
    """The written decision: fail over to per-process limits, not open, not closed."""
    app = no_csrf(make_app(redis_url="redis://127.0.0.1:1/0", rate_limit_login="2 per minute"))
    client = client_at(app, "127.0.0.97")
    codes = [client.post("/login", data={"username": "a@example.com", "password": "x"}).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
