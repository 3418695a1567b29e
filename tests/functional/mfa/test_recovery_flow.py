"""Recovery codes at the second-factor step (issue 4, Done 6)."""

from __future__ import annotations

import re

from tests.functional.mfa.flows import (
    CODES_RE,
    enrol_totp,
    live_sessions,
    page_csrf,
    password_session,
    submit_code,
    totp_code,
)

EMAIL = "user@example.com"


def test_a_recovery_code_signs_in_once_and_never_again(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    _secret, codes = enrol_totp(client, outbox, EMAIL)

    first = app.test_client()
    password_session(first, EMAIL)
    assert 'data-testid="use-recovery-code"' in first.get("/mfa?next=/account").get_data(as_text=True)
    response = submit_code(first, codes[0], method="recovery")
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    page = first.get("/account").get_data(as_text=True)
    assert re.search(r'data-testid="recovery-remaining">9<', page)
    newest = max(live_sessions(app, EMAIL), key=lambda s: s.created_at)
    assert set(newest.amr) == {"pwd", "otp"}

    second = app.test_client()
    password_session(second, EMAIL)
    assert submit_code(second, codes[0], method="recovery").status_code == 400
    assert second.get("/account").status_code == 302


def test_recovery_codes_are_shown_once_and_regenerating_voids_them(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    secret, codes = enrol_totp(client, outbox, EMAIL)
    # The first set is never shown again.
    again = client.get("/mfa/recovery-codes/first?next=/account")
    assert again.status_code == 302 and again.headers["Location"] == "/account"
    # Regenerating (right after a factor check) gives a new set; the old one is void.
    response = client.post("/mfa/recovery-codes", data={"csrf_token": page_csrf(client)})
    assert response.status_code == 200
    new_codes = CODES_RE.findall(response.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    other = app.test_client()
    password_session(other, EMAIL)
    assert submit_code(other, codes[1], method="recovery").status_code == 400
    assert submit_code(other, new_codes[1], method="recovery").status_code == 302
    assert any("sign-in method changed" in m["Subject"] for m in outbox.to(EMAIL))
    assert totp_code(secret)  # the authenticator is untouched


def test_recovery_codes_do_not_reach_phishing_resistant_step_up(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    _secret, codes = enrol_totp(client, outbox, EMAIL)
    page = client.get("/mfa?next=/account&acr=urn:idp:acr:phr").get_data(as_text=True)
    assert 'name="code"' not in page and 'data-testid="no-method"' in page
    response = submit_code(client, codes[0], method="recovery", acr="urn:idp:acr:phr")
    assert response.status_code == 400
