"""Breached and context-word passwords on every path, and the forced change at sign-in.

The corpus is generated per test (the real importer on SHA1HEX:COUNT lines, plus the
shipped list) through the ``breach`` fixture. MFA is optional here so that the pages
under test are reached by password alone; the forced change itself lives in
``login_required`` and so applies after any second factor as well.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.accounts.passwords import PasswordRejected
from idp.models import AuditEvent, SsoSession, User
from tests.conftest import make_settings
from tests.fixtures import get_csrf, sign_in as password_step

GOOD = "ferret mandolin quietly orbits"
NEWER = "lighthouse porridge under tuesday"
BREACHED = "tangerine submarine forever 1987"
COMMON = "1q2w3e4r5t6y7u8i9o0p"  # on the shipped list (Django's common passwords)
SERVICE = "Acme Single Sign-On"
EMAIL = "someone.long.name@example.com"

BREACH_MESSAGE = "appeared in a data breach"
WHAT_TO_DO = "Choose a different one"


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path,
                         mfa_policy="optional", service_name=SERVICE)


def events(app, name: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def user_row(app, email: str) -> User:  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        return db.scalar(select(User).where(User.email == email))


def sign_in(client, email: str, password: str, *, outbox=None):  # type: ignore[no-untyped-def]
    """The password step, then (when the new-device gate asks for it) the mailed link."""
    response = password_step(client, email, password)
    if response.status_code != 302 or outbox is None:
        return response
    probe = client.get(response.headers["Location"])
    where = probe.headers.get("Location", "")
    if probe.status_code == 302 and where.startswith("/login/new-device"):
        client.post("/login/new-device", data={"csrf_token": get_csrf(client, where)})
        link = outbox.last_link(email, "/login/link/confirm").removeprefix("http://localhost")
        token = link.split("token=", 1)[1]
        client.post("/login/link/confirm", data={"csrf_token": get_csrf(client, link), "token": token})
    return response


def register(client, email: str, password: str):  # type: ignore[no-untyped-def]
    token = get_csrf(client, "/register")
    return client.post("/register", data={"csrf_token": token, "username": email, "password": password})


def change(client, current: str, new: str):  # type: ignore[no-untyped-def]
    token = get_csrf(client, "/account/password")
    return client.post("/account/password",
                       data={"csrf_token": token, "current_password": current, "new_password": new})


# ------------------------------------------------------------------ sign-up
def test_sign_up_rejects_a_breached_password_saying_why_and_what_to_do(client, breach):
    breach(BREACHED)
    response = register(client, "new@example.com", BREACHED)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert BREACH_MESSAGE in page and WHAT_TO_DO in page

    assert register(client, "new@example.com", GOOD).status_code == 200


def test_sign_up_rejects_the_shipped_common_passwords_without_any_import(client):
    response = register(client, "new@example.com", COMMON)
    assert response.status_code == 400
    assert BREACH_MESSAGE in response.get_data(as_text=True)


@pytest.mark.parametrize("word", [SERVICE, SERVICE.upper(), EMAIL, EMAIL.split("@")[0]])
def test_sign_up_rejects_context_words(client, word):
    response = register(client, EMAIL, word)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "your email address or this service" in page.replace("&#39;", "'")


# ------------------------------------------------------- operator (service)
def test_operator_set_password_rejects_a_breached_one(app, breach, make_user):
    breach(BREACHED)
    with pytest.raises(PasswordRejected, match=BREACH_MESSAGE):
        make_user("ops@example.com", BREACHED)
    with pytest.raises(PasswordRejected, match="your email address"):
        make_user(EMAIL, EMAIL.split("@")[0])
    assert make_user("ops@example.com", GOOD).email == "ops@example.com"


# ---------------------------------------------------------- password change
def test_change_rejects_a_breached_password_and_accepts_a_good_one(app, client, breach, make_user, outbox):
    make_user(EMAIL, GOOD)
    breach(BREACHED)
    other = app.test_client()
    assert sign_in(other, EMAIL, GOOD, outbox=outbox).status_code == 302
    assert sign_in(client, EMAIL, GOOD, outbox=outbox).status_code == 302

    response = change(client, GOOD, BREACHED)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert BREACH_MESSAGE in page and WHAT_TO_DO in page
    for word in (SERVICE, EMAIL, EMAIL.split("@")[0]):
        assert change(client, GOOD, word).status_code == 400

    response = change(client, GOOD, NEWER)
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    assert "Your password has been changed" in client.get("/account").get_data(as_text=True)
    # Every other session ended; this one kept.
    assert other.get("/account").status_code == 302
    assert client.get("/account").status_code == 200
    assert len(events(app, "password.changed")) == 1
    assert sign_in(app.test_client(), EMAIL, GOOD).status_code == 401
    assert sign_in(app.test_client(), EMAIL, NEWER).status_code == 302


def test_change_needs_the_current_password(app, client, make_user, outbox):
    make_user(EMAIL, GOOD)
    sign_in(client, EMAIL, GOOD, outbox=outbox)
    response = change(client, "not my password at all", NEWER)
    assert response.status_code == 400
    assert "current password is not correct" in response.get_data(as_text=True)
    assert [e.details["reason"] for e in events(app, "password.change_failed")] == ["wrong_current_password"]
    assert sign_in(app.test_client(), EMAIL, GOOD).status_code == 302


def test_change_page_needs_a_session_and_a_csrf_token(app, client, make_user, outbox):
    assert client.get("/account/password").status_code == 302
    make_user(EMAIL, GOOD)
    sign_in(client, EMAIL, GOOD, outbox=outbox)
    response = client.post("/account/password", data={"current_password": GOOD, "new_password": NEWER})
    assert response.status_code == 400
    assert sign_in(app.test_client(), EMAIL, GOOD).status_code == 302


# ------------------------------------------------ breach found at sign-in
def test_sign_in_with_a_newly_breached_password_forces_a_change(app, client, breach, make_user, outbox):
    make_user(EMAIL, BREACHED)  # fine when the account was made...
    breach(BREACHED)  # ...then the password turns up in a newly imported breach

    response = sign_in(client, EMAIL, BREACHED, outbox=outbox)
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    assert len(events(app, "password.found_in_breach")) == 1
    assert user_row(app, EMAIL).must_change_password

    # Every signed-in page leads to the change page until the password is changed.
    response = client.get("/account")
    assert response.status_code == 302 and response.headers["Location"] == "/account/password?forced=1"
    token = get_csrf(client, "/account/password?forced=1")
    response = client.post("/account/sessions/end-others", data={"csrf_token": token})
    assert response.headers["Location"] == "/account/password?forced=1"
    page = client.get("/account/password?forced=1").get_data(as_text=True)
    assert 'data-testid="forced-change"' in page and "data breach" in page

    # The breached password cannot be kept, nor another breached one chosen.
    assert change(client, BREACHED, BREACHED).status_code == 400
    response = change(client, BREACHED, COMMON)
    assert response.status_code == 400 and BREACH_MESSAGE in response.get_data(as_text=True)
    assert client.get("/account").status_code == 302

    response = change(client, BREACHED, GOOD)
    assert response.status_code == 302
    assert client.get("/account").status_code == 200
    assert not user_row(app, EMAIL).must_change_password
    [changed] = events(app, "password.changed")
    assert changed.details["forced"] is True


def test_sign_out_stays_possible_during_a_forced_change(app, client, breach, make_user, outbox):
    make_user(EMAIL, BREACHED)
    breach(BREACHED)
    sign_in(client, EMAIL, BREACHED, outbox=outbox)
    token = get_csrf(client, "/account/password")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    with app.extensions["idp"].sessionmaker() as db:
        assert db.scalar(select(SsoSession).where(SsoSession.ended_at.is_(None))) is None


def test_a_good_password_signs_in_without_a_forced_change(app, client, breach, make_user, outbox):
    make_user(EMAIL, GOOD)
    breach(BREACHED)
    sign_in(client, EMAIL, GOOD, outbox=outbox)
    assert client.get("/account").status_code == 200
    assert events(app, "password.found_in_breach") == []


def test_after_a_change_the_interrupted_page_continues_same_site_only(app, client, make_user, outbox):
    make_user(EMAIL, GOOD)
    sign_in(client, EMAIL, GOOD, outbox=outbox)
    token = get_csrf(client, "/account/password?next=/account%3Ftab%3Dsessions")
    response = client.post("/account/password", data={"csrf_token": token, "current_password": GOOD,
                                                      "new_password": NEWER, "next": "/account?tab=sessions"})
    assert response.headers["Location"] == "/account?tab=sessions"
    response = client.post("/account/password", data={"csrf_token": token, "current_password": NEWER,
                                                      "new_password": GOOD, "next": "https://evil.example/"})
    assert response.headers["Location"] == "/account"
