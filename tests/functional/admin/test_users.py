"""Admin API, users: look up, disable, enable, unlock, force a reset, end sessions.

Effects are checked where a person or an attacker meets them: /login, /userinfo,
/token, the account page, the outbox, and the audit log (every action carries the
acting admin's id).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp.models import AuditEvent
from tests.fixtures import sign_in, start_session
from tests.functional.admin.conftest import (
    ADMIN_EMAIL,
    PASSKEY,
    PASSWORD,
    REDIRECT,
    USER_EMAIL,
    basic,
    code_flow,
    make_account,
    register_client,
)
from tests.functional.mfa.flows import totp_code

GENERIC = "That email and password do not match an account."


@pytest.fixture
def person(console):  # type: ignore[no-untyped-def]
    """A signed-in person with tokens at the shop: their browser, user id, token response."""
    user_id = make_account(console.app, USER_EMAIL)
    shop = register_client(console.app, name="Shop", scope="openid email")
    browser = console.app.test_client()
    start_session(console.app, browser, USER_EMAIL, amr=PASSKEY)
    tokens = code_flow(console.app, browser, shop, scope="openid email", resource=None)
    return browser, user_id, tokens, shop


def _audit(console, event: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    registry = console.app.extensions["idp"]
    with registry.sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.seq)))


def _userinfo(console, access_token: str) -> int:  # type: ignore[no-untyped-def]
    return console.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"}).status_code


def _refresh(console, shop, refresh_token: str):  # type: ignore[no-untyped-def]
    return console.http.post("/token", headers=basic(shop),
                             data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_look_up_by_email_or_id_shows_state_and_factors_never_secrets(console):
    user_id = make_account(console.app, USER_EMAIL)
    registry = console.app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        user = services.accounts.get(user_id)
        pending = services.totp.begin(user)
        services.totp.confirm(user, pending.id, totp_code(services.totp.secret(pending)), name="phone")
        db.commit()
        password_hash = user.password_hash
    start_session(console.app, console.app.test_client(), USER_EMAIL, amr=PASSKEY)
    token = console.token(scope="admin:users")

    found = console.call("GET", "/admin/users?email=User@EXAMPLE.com", token)  # normalised as at sign-in
    assert found.status_code == 200, found.get_data(as_text=True)
    (info,) = found.get_json()["users"]
    assert info["id"] == user_id and info["email"] == USER_EMAIL
    assert info["verified"] is True and info["disabled"] is False and info["is_admin"] is False
    assert info["factors"] == {"totp": 1, "passkeys": 0, "recovery_codes_left": 0}
    assert info["active_sessions"] == 1 and info["last_sign_in"] is not None and info["created"].endswith("Z")
    by_id = console.call("GET", f"/admin/users/{user_id}", token)
    assert by_id.get_json() == info
    text = found.get_data(as_text=True)
    assert password_hash not in text and "argon2" not in text and "secret" not in text

    for path in ("/admin/users?email=nobody@example.com", "/admin/users/AAAAAAAAAAAAAAAAAAAAAA",
                 "/admin/users/%00", "/admin/users/" + "a" * 65):
        missing = console.call("GET", path, token)
        assert missing.status_code == 404, path
        assert missing.get_json()["error"] == "not_found"
    assert console.call("GET", "/admin/users", token).status_code == 400
    assert console.call("GET", "/admin/users?email=not-an-address", token).status_code == 400


def test_disable_refuses_sign_in_ends_sessions_and_kills_tokens(console, person):
    browser, user_id, tokens, shop = person
    assert _userinfo(console, tokens["access_token"]) == 200
    token = console.token(scope="admin:users")

    response = console.call("POST", f"/admin/users/{user_id}/disable", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert result["changed"] is True and result["sessions_ended"] == 1 and result["tokens_revoked"] >= 2

    # The tokens the shop holds are dead: access token at userinfo, refresh at /token.
    assert _userinfo(console, tokens["access_token"]) == 401
    refreshed = _refresh(console, shop, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    # The browser's session is over: the account page sends it to sign in.
    page = browser.get("/account")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    # The right password at /login gets the same answer as a wrong one.
    attempt = sign_in(console.app.test_client(), USER_EMAIL, PASSWORD)
    assert attempt.status_code == 401 and GENERIC in attempt.get_data(as_text=True)
    shown = console.call("GET", f"/admin/users/{user_id}", token).get_json()
    assert shown["disabled"] is True and shown["disabled_at"] is not None and shown["active_sessions"] == 0
    # Even a session record made behind the sign-in pages' back gets no code at /authorize.
    late = console.app.test_client()
    start_session(console.app, late, USER_EMAIL, amr=PASSKEY)
    asked = late.get("/authorize", query_string={
        "response_type": "code", "client_id": shop.client_id, "redirect_uri": REDIRECT, "scope": "openid",
        "state": "s", "nonce": "n", "code_challenge": "a" * 43, "code_challenge_method": "S256"})
    assert asked.status_code == 302 and asked.headers["Location"].startswith("/login")
    (event,) = _audit(console, "account.disabled")
    assert event.user_id == user_id and event.details["actor"] == console.admin_id

    # Enabling lets the password work again; nothing that was ended comes back.
    enabled = console.call("POST", f"/admin/users/{user_id}/enable", token)
    assert enabled.status_code == 200 and enabled.get_json()["changed"] is True
    assert sign_in(console.app.test_client(), USER_EMAIL, PASSWORD).status_code == 302
    assert _userinfo(console, tokens["access_token"]) == 401
    assert _audit(console, "account.enabled")[0].details["actor"] == console.admin_id


def test_an_admin_cannot_disable_their_own_account(console):
    token = console.token(scope="admin:users")
    response = console.call("POST", f"/admin/users/{console.admin_id}/disable", token)
    assert response.status_code == 409 and response.get_json()["error"] == "conflict"
    assert console.call("GET", "/admin/keys", console.token(scope="admin:keys")).status_code == 200


def test_end_sessions_signs_the_person_out_everywhere_but_leaves_the_account_usable(console, person):
    browser, user_id, tokens, shop = person
    token = console.token(scope="admin:users")
    response = console.call("POST", f"/admin/users/{user_id}/end-sessions", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["sessions_ended"] == 1
    assert _userinfo(console, tokens["access_token"]) == 401
    assert _refresh(console, shop, tokens["refresh_token"]).status_code == 400
    assert browser.get("/account").status_code == 302
    assert sign_in(console.app.test_client(), USER_EMAIL, PASSWORD).status_code == 302
    (event,) = _audit(console, "account.sessions_ended")
    assert event.details["actor"] == console.admin_id


@pytest.mark.parametrize("settings", [{"ip_user_failure_limit": 3}], indirect=True)
def test_unlock_clears_an_account_lock(console):
    make_account(console.app, USER_EMAIL)
    attacker = console.app.test_client()  # same address as the owner's browser below
    for _ in range(3):
        assert sign_in(attacker, USER_EMAIL, "wrong password guess").status_code == 401
    # Locked for this address: the right password is refused like a wrong one.
    owner = console.app.test_client()
    locked = sign_in(owner, USER_EMAIL, PASSWORD)
    assert locked.status_code == 401 and GENERIC in locked.get_data(as_text=True)

    token = console.token(scope="admin:users")
    user_id = console.call("GET", f"/admin/users?email={USER_EMAIL}", token).get_json()["users"][0]["id"]
    response = console.call("POST", f"/admin/users/{user_id}/unlock", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert sign_in(owner, USER_EMAIL, PASSWORD).status_code == 302
    (event,) = _audit(console, "account.unlocked")
    assert event.user_id == user_id and event.details["actor"] == console.admin_id


def test_force_reset_over_the_api_mails_the_address_on_file_and_ends_everything(console, person, outbox):
    browser, user_id, tokens, shop = person
    token = console.token(scope="admin:users")
    response = console.call("POST", f"/admin/users/{user_id}/force-reset", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"id": user_id, "changed": True, "mailed": True}

    assert "/reset" in outbox.last_link(USER_EMAIL, "/reset")
    assert sign_in(console.app.test_client(), USER_EMAIL, PASSWORD).status_code == 401
    assert _userinfo(console, tokens["access_token"]) == 401
    assert browser.get("/account").status_code == 302
    shown = console.call("GET", f"/admin/users/{user_id}", token).get_json()
    assert shown["password_set"] is False and shown["must_change_password"] is True
    (event,) = _audit(console, "admin.force_reset")
    assert event.user_id == user_id and event.details["actor"] == console.admin_id
    assert _audit(console, "password.force_reset")[0].user_id == user_id


def test_user_actions_on_unknown_ids_are_404_and_bodies_are_checked(console):
    token = console.token(scope="admin:users")
    for action in ("disable", "enable", "unlock", "end-sessions", "force-reset"):
        response = console.call("POST", f"/admin/users/nobody/{action}", token)
        assert response.status_code == 404, action
    user_id = make_account(console.app, USER_EMAIL)
    bad = [
        ({"data": "{", "content_type": "application/json"}, 400),
        ({"data": json.dumps({"reason": "x"}), "content_type": "application/json"}, 400),
        ({"data": "[]", "content_type": "application/json"}, 400),
        ({"data": "x=1", "content_type": "text/plain"}, 415),
        ({"data": "{}" + " " * 70_000, "content_type": "application/json"}, 413),
    ]
    for kwargs, status in bad:
        response = console.call("POST", f"/admin/users/{user_id}/disable", token, **kwargs)
        assert response.status_code == status, (kwargs["data"][:10], response.status_code)
        assert set(response.get_json()) == {"error", "error_description"}
    # The account is untouched by the refused requests.
    info = console.call("GET", f"/admin/users/{user_id}", token).get_json()
    assert info["disabled"] is False


def test_a_lookup_takes_exactly_one_address(console):
    token = console.token(scope="admin:users")
    response = console.call("GET", f"/admin/users?email={ADMIN_EMAIL}&email=x@example.com", token)
    assert response.status_code == 400  # one address per lookup
