"""The assurance gate under IDP_MFA_POLICY=required (issue 4, Done 4 and 7).

Done 4: no account page and no MFA endpoint other than the second-factor step itself
yields an authenticated page to a password-only session.
Done 7: an attacker holding only the password of an account without a second factor
cannot bind one from a fresh browser, by any path.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from idp.models import AuditEvent, TotpAuthenticator, WebAuthnCredential
from tests.fixtures import Outbox, csrf_from, prove_new_device, sign_in
from tests.functional.mfa.flows import (
    authenticator,
    enrol_totp,
    live_sessions,
    page_csrf,
    password_session,
    post_json,
    prove_email,
    submit_code,
    totp_code,
)

VICTIM = "victim@example.com"

GET_PAGES = [
    "/account",
    "/mfa/recovery-codes/first?next=/account",
]
POST_FORMS = [
    "/account/sessions/end-others",
    "/account/sessions/SESSION/end",
    "/mfa/recovery-codes",
    "/mfa/factors/totp/FACTOR/rename",
    "/mfa/factors/totp/FACTOR/remove",
]


def _session_id(app) -> str:  # type: ignore[no-untyped-def]
    return live_sessions(app, VICTIM)[0].id


@pytest.fixture
def password_only(app, client, make_user):  # type: ignore[no-untyped-def]
    make_user(VICTIM)
    password_session(client, VICTIM)
    return client


@pytest.mark.parametrize("path", GET_PAGES)
def test_password_only_session_gets_no_authenticated_page(app, password_only, path):
    response = password_only.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/mfa?next=")


@pytest.mark.parametrize("path", POST_FORMS)
def test_password_only_session_cannot_use_account_actions(app, password_only, path):
    path = path.replace("SESSION", _session_id(app)).replace("FACTOR", "x")
    response = password_only.post(path, data={"csrf_token": page_csrf(password_only), "name": "n"})
    assert response.status_code == 302 and response.headers["Location"] == "/mfa"
    assert len(_live(app)) == 1  # nothing was ended either


def _live(app):  # type: ignore[no-untyped-def]
    return live_sessions(app, VICTIM)


def test_second_factor_step_leads_an_account_without_factor_to_enrolment(password_only):
    response = password_only.get("/mfa?next=/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa/setup")
    page = password_only.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="send-proof"' in page
    assert "totp-secret" not in page and 'data-webauthn="register"' not in page


def test_policy_optional_lets_a_password_session_in(app, make_user):  # type: ignore[no-untyped-def]
    from idp import create_app

    optional = create_app(app.extensions["idp"].settings.replace(mfa_policy="optional"))
    try:
        browser = optional.test_client()
        make_user("opt@example.com")
        assert sign_in(browser, "opt@example.com", "correct horse battery staple").status_code == 302
        # From a device it does not know yet, only after the mailed link (issue 6).
        assert browser.get("/account").headers["Location"].startswith("/login/new-device")
        prove_new_device(browser, "opt@example.com", Outbox(optional.extensions["idp"].settings.mail_outbox))
        assert browser.get("/account").status_code == 200
    finally:
        optional.extensions["idp"].engine.dispose()


# ------------------------------------------------------------------- Done 7
def test_attacker_with_the_password_cannot_bind_totp(app, password_only):
    attacker = password_only
    response = attacker.get("/mfa/totp/new?next=/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa/setup")
    response = attacker.post("/mfa/totp/new", data={"csrf_token": page_csrf(attacker), "code": "123456"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa/setup")
    account = attacker.get("/account")
    assert account.status_code == 302
    assert _bound(app) == (0, 0)


def test_attacker_with_the_password_cannot_bind_a_passkey(app, password_only):
    attacker = password_only
    token = page_csrf(attacker)
    options = post_json(attacker, "/mfa/passkeys/options", {}, csrf=token)
    assert options.status_code == 403 and options.get_json()["error"] == "email_proof_required"
    # A well-formed registration built without our options (no challenge): still refused.
    forged = authenticator().create({
        "rp": {"id": "localhost"}, "user": {"id": "AAAA"}, "challenge": "AAAAAAAAAAAAAAAAAAAAAA",
    })
    response = post_json(attacker, "/mfa/passkeys/verify", {"credential": forged}, csrf=token)
    assert response.status_code == 403
    # Usernameless sign-in endpoints never register anything.
    assert post_json(attacker, "/passkey/signin/verify", {"credential": forged}, csrf=token).status_code == 400
    assert _bound(app) == (0, 0)
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        refused = db.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.binding_refused")).all()
    assert len(refused) == 2


def test_attacker_cannot_use_a_proof_link_mailed_for_another_browser(app, client, make_user, outbox):
    make_user(VICTIM)
    victim = client
    password_session(victim, VICTIM)
    attacker = app.test_client()
    password_session(attacker, VICTIM)
    # The attacker asks for the mail; it goes to the victim's verified address only.
    token = page_csrf(attacker)
    assert attacker.post("/mfa/setup/email", data={"csrf_token": token, "next": "/account"}).status_code == 200
    proofs = [m for m in outbox.messages() if "Confirm it is you" in m["Subject"]]
    assert [m["To"] for m in proofs] == [VICTIM]
    link = outbox.last_link(VICTIM, "/mfa/email-proof").removeprefix("http://localhost")
    # Suppose the victim is tricked into opening it in their own signed-in browser:
    page = victim.get(link)
    proof = re.search(r'name="token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = victim.post("/mfa/email-proof", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                     "token": proof})
    assert response.status_code == 400
    # ...and a guessed token in the attacker's browser does nothing either.
    response = attacker.post("/mfa/email-proof", data={"csrf_token": token, "token": "A" * 43})
    assert response.status_code == 400
    assert attacker.get("/mfa/totp/new").headers["Location"].startswith("/mfa/setup")
    assert _bound(app) == (0, 0)


def test_proof_from_one_browser_session_does_not_carry_to_another(app, client, make_user, outbox):
    make_user(VICTIM)
    password_session(client, VICTIM)
    prove_email(client, outbox, VICTIM)
    assert client.get("/mfa/totp/new?next=/account").status_code == 200  # proven here
    attacker = app.test_client()
    password_session(attacker, VICTIM)
    assert attacker.get("/mfa/totp/new?next=/account").status_code == 302
    assert post_json(attacker, "/mfa/passkeys/options", {}, csrf=page_csrf(attacker)).status_code == 403


def test_password_and_mailbox_are_not_enough_once_the_account_has_a_factor(app, client, make_user, outbox):
    """An account with TOTP: the attacker even reads the mail, but must pass the factor first."""
    make_user(VICTIM)
    password_session(client, VICTIM)
    secret, _codes = enrol_totp(client, outbox, VICTIM)
    attacker = app.test_client()
    password_session(attacker, VICTIM)
    assert attacker.get("/mfa/setup").headers["Location"].startswith("/mfa?")
    token = page_csrf(attacker)
    assert attacker.post("/mfa/setup/email", data={"csrf_token": token}).status_code == 200
    link = outbox.last_link(VICTIM, "/mfa/email-proof").removeprefix("http://localhost")
    page = attacker.get(link).get_data(as_text=True)
    proof = re.search(r'name="token" value="([^"]+)"', page).group(1)
    attacker.post("/mfa/email-proof", data={"csrf_token": token, "token": proof})
    assert attacker.get("/mfa/totp/new").status_code == 302
    assert post_json(attacker, "/mfa/passkeys/options", {}, csrf=token).status_code == 403
    assert _bound(app) == (1, 0)
    # The owner, after the second factor, may add more (with a proof of their own).
    assert submit_code(attacker, totp_code(secret, steps=1)).status_code == 302  # (were it the owner)
    assert attacker.get("/mfa/totp/new?next=/account").status_code == 200


def test_proof_mails_are_limited_per_session(password_only, outbox):
    token = page_csrf(password_only)
    statuses = [password_only.post("/mfa/setup/email", data={"csrf_token": token}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert len([m for m in outbox.messages() if "Confirm it is you" in m["Subject"]]) == 3


def test_proof_link_query_abuse_gets_a_4xx(password_only):
    assert password_only.get("/mfa/email-proof").status_code == 400
    assert password_only.get("/mfa/email-proof?token=" + "A" * 500).status_code == 400
    token = page_csrf(password_only)
    assert password_only.post("/mfa/email-proof", data={"csrf_token": token, "token": "\u0661" * 20}).status_code == 400


def _bound(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        totp = len(db.scalars(select(TotpAuthenticator).where(TotpAuthenticator.confirmed_at.is_not(None))).all())
        keys = len(db.scalars(select(WebAuthnCredential)).all())
    return totp, keys
