"""Sign-up, verification, sign-in, sessions and sign-out through the Flask test client."""

from __future__ import annotations

import pytest

from tests.fixtures import get_csrf, prove_new_device, sign_in

# Password-only behaviour: the MFA gate (issue 4) is tested in tests/functional/mfa/.
pytestmark = pytest.mark.mfa_policy("optional")

PASSWORD = "correct horse battery staple"


def test_signup_verify_signin_account_signout(client, outbox):
    token = get_csrf(client, "/register")
    response = client.post("/register", data={"csrf_token": token, "username": "New@Example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert "Check your email" in response.get_data(as_text=True)

    # Not verified yet: the right password leads to "check your email", not a session.
    response = sign_in(client, "new@example.com", PASSWORD)
    assert response.status_code == 403
    assert client.get("/account").status_code == 302

    link = outbox.last_link("new@example.com", "/verify-email")
    assert link.startswith("http://localhost/verify-email?token=")
    path = link.removeprefix("http://localhost")
    page = client.get(path)
    assert page.status_code == 200
    response = client.post("/verify-email", data={"csrf_token": get_csrf(client, path), "token": path.split("=", 1)[1]})
    assert response.status_code == 302

    response = sign_in(client, "NEW@example.com", PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    # A new device with no second factor yet: the account page waits for the mailed link.
    assert client.get("/account").headers["Location"].startswith("/login/new-device")
    prove_new_device(client, "new@example.com", outbox)
    page = client.get("/account")
    assert page.status_code == 200
    assert "new@example.com" in page.get_data(as_text=True)

    response = client.post("/logout", data={"csrf_token": get_csrf(client, "/account")})
    assert response.status_code == 302
    assert client.get("/account").status_code == 302
