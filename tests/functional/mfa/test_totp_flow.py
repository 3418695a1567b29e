"""TOTP end to end (issue 4, Done 3): enrol, sign in, replay, old code, five wrong codes."""

from __future__ import annotations

from sqlalchemy import select

from idp.models import AuditEvent, SsoSession
from tests.fixtures import sign_in
from tests.functional.mfa.flows import (
    PASSWORD,
    confirm_totp,
    enrol_totp,
    live_sessions,
    page_csrf,
    password_session,
    prove_email,
    start_totp,
    submit_code,
    text,
    totp_code,
    wrong_code,
)

EMAIL = "user@example.com"


def test_first_sign_in_leads_to_enrolment_and_the_account_after_a_correct_code(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    response = client.get("/account")
    assert response.status_code == 302 and response.headers["Location"] == "/mfa?next=%2Faccount"
    response = client.get(response.headers["Location"])
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa/setup")
    secret, codes = enrol_totp(client, outbox, EMAIL)
    page = client.get("/account")
    assert page.status_code == 200
    assert 'data-testid="factor" data-kind="totp"' in page.get_data(as_text=True)
    subjects = [m["Subject"] for m in outbox.to(EMAIL)]
    assert any("Confirm it is you" in s for s in subjects)
    assert any("sign-in method changed" in s for s in subjects)  # the binding notice
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        names = set(db.scalars(select(AuditEvent.event).where(AuditEvent.user_id.is_not(None))))
    assert {"mfa.proof_sent", "mfa.proof_used", "mfa.factor_added", "mfa.verified"} <= names
    [session] = live_sessions(app, EMAIL)
    assert set(session.amr) == {"pwd", "otp"}


def test_enrolment_stays_pending_until_a_correct_code(client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    prove_email(client, outbox, EMAIL)
    secret = start_totp(client)
    response = confirm_totp(client, wrong_code(secret))
    assert response.status_code == 400
    assert client.get("/account").status_code == 302  # still password-only
    assert confirm_totp(client, totp_code(secret)).status_code == 302


def test_sign_in_with_totp_then_the_same_code_is_refused(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    secret, _codes = enrol_totp(client, outbox, EMAIL)

    second = app.test_client()
    password_session(second, EMAIL)
    assert second.get("/account").headers["Location"] == "/mfa?next=%2Faccount"
    page = second.get("/mfa?next=/account")
    assert page.status_code == 200 and 'name="code"' in page.get_data(as_text=True)
    code = totp_code(secret, steps=1)
    response = submit_code(second, code)
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    assert second.get("/account").status_code == 200

    third = app.test_client()
    password_session(third, EMAIL)
    replay = submit_code(third, code)
    assert replay.status_code == 400
    assert "That code is not right" in text(replay)
    assert third.get("/account").status_code == 302


def test_code_from_two_steps_ago_is_refused(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    secret, _codes = enrol_totp(client, outbox, EMAIL)
    other = app.test_client()
    password_session(other, EMAIL)
    assert submit_code(other, totp_code(secret, steps=-2)).status_code == 400
    assert other.get("/account").status_code == 302


def test_five_wrong_codes_end_the_attempt(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    secret, _codes = enrol_totp(client, outbox, EMAIL)
    attacker = app.test_client()
    password_session(attacker, EMAIL)
    for _ in range(4):
        assert submit_code(attacker, wrong_code(secret)).status_code == 400
    response = submit_code(attacker, wrong_code(secret))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    # Back to the password: even the right code is no use now.
    assert attacker.get("/mfa").headers["Location"].startswith("/login")
    assert submit_code(attacker, totp_code(secret, steps=1)).status_code == 302
    assert attacker.get("/account").headers["Location"].startswith("/login")
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        ended = db.scalars(select(SsoSession.end_reason).where(SsoSession.end_reason == "mfa_failed")).all()
    assert ended == ["mfa_failed"]


def test_wrong_codes_across_many_sign_ins_are_throttled_per_account(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    secret, _codes = enrol_totp(client, outbox, EMAIL)
    for _ in range(2):
        attacker = app.test_client()
        password_session(attacker, EMAIL)
        for _ in range(5):
            submit_code(attacker, wrong_code(secret))
    attacker = app.test_client()
    password_session(attacker, EMAIL)
    response = submit_code(attacker, totp_code(secret, steps=1))
    assert response.status_code == 429


def test_codes_with_letters_or_non_ascii_digits_get_a_4xx(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    secret, _codes = enrol_totp(client, outbox, EMAIL)
    other = app.test_client()
    password_session(other, EMAIL)
    good = totp_code(secret, steps=1)
    arabic = good.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    fullwidth = good.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    for bad in ("12a456", arabic, fullwidth, "x" * 60, "\x00" * 6):
        response = submit_code(other, bad)
        assert 400 <= response.status_code < 500, (bad, response.status_code)
    for data in (
        {"method": "sms", "code": good},
        {"method": "totp", "code": "1" * 100},
    ):
        response = other.post("/mfa", data={"csrf_token": page_csrf(other), "next": "/account", **data})
        assert response.status_code == 400
    huge = other.post("/mfa", data={"csrf_token": page_csrf(other), "code": "1" * (200 * 1024)})
    assert huge.status_code == 413
    duplicated = other.post("/mfa", data={"csrf_token": page_csrf(other), "code": [good, good]})
    assert duplicated.status_code == 400
    bad_utf8 = other.post("/mfa", data=b"code=%FF%FE&csrf_token=" + page_csrf(other).encode(),
                          content_type="application/x-www-form-urlencoded")
    assert bad_utf8.status_code == 400
    assert other.get("/mfa?max_age=%F0%9F%98%80").status_code == 400
    assert other.get("/mfa?next=//evil.example&acr=nonsense").status_code == 200
    # None of that counted as a success, and it does not stop the real code.
    assert submit_code(other, good).status_code in (302, 429)


def test_password_sign_in_page_still_has_one_submit_button(client):
    page = client.get("/login").get_data(as_text=True)
    assert page.count('type="submit"') == 1
    assert 'data-testid="passkey-signin"' in page


def test_sign_out_of_the_mfa_step_is_possible(client, make_user):
    make_user(EMAIL)
    assert sign_in(client, EMAIL, PASSWORD).status_code == 302
    assert client.post("/logout", data={"csrf_token": page_csrf(client)}).status_code == 302
    assert client.get("/mfa").headers["Location"].startswith("/login")
