"""IDP_MFA_POLICY=optional: a password from a recognised device reaches the account, but
never more than that; from a new device it does not even reach the account page."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from idp.models import RecoveryCode, TotpAuthenticator
from tests.functional.mfa.flows import (
    enrol_totp,
    page_csrf,
    password_session,
    post_json,
    submit_code,
)

pytestmark = pytest.mark.mfa_policy("optional")
EMAIL = "user@example.com"


def test_password_session_reaches_the_account_but_cannot_bind_without_the_mailed_proof(app, client, make_user):
    make_user(EMAIL)
    password_session(client, EMAIL)
    # An unrecognised device with only a password does not even reach the account page...
    assert client.get("/account").headers["Location"].startswith("/login/new-device")
    assert client.get("/mfa/totp/new").headers["Location"].startswith("/mfa/setup")
    assert post_json(client, "/mfa/passkeys/options", {}, csrf=page_csrf(client)).status_code == 403


def test_a_password_holder_cannot_mint_recovery_codes_for_an_account_that_has_none(app, client, make_user, outbox):
    make_user(EMAIL)
    password_session(client, EMAIL)
    enrol_totp(client, outbox, EMAIL)
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:  # the owner never looked at the codes
        db.execute(delete(RecoveryCode))
        db.commit()
    attacker = app.test_client()
    password_session(attacker, EMAIL)
    account = attacker.get("/account")
    # optional, but a new device with a factor enrolled: the factor is asked first (issue 6).
    assert account.status_code == 302 and account.headers["Location"].startswith("/login/new-device")
    with registry.sessionmaker() as db:
        factor_id = db.scalar(select(TotpAuthenticator.id))
    response = attacker.get("/mfa/recovery-codes/first?next=/account")
    assert response.status_code == 302 and "<code>" not in response.get_data(as_text=True)
    assert attacker.post("/mfa/recovery-codes", data={"csrf_token": page_csrf(attacker)}).status_code == 302
    # ...nor rename or remove the owner's factor, nor step up with a guess.
    for action in ("rename", "remove"):
        response = attacker.post(f"/mfa/factors/totp/{factor_id}/{action}",
                                 data={"csrf_token": page_csrf(attacker), "name": "attacker"})
        assert response.status_code == 302 and response.headers["Location"].startswith("/mfa?")
    assert submit_code(attacker, "aaaa-bbbb-cccc-dddd", method="recovery").status_code == 400
    with registry.sessionmaker() as db:
        assert db.scalars(select(RecoveryCode)).all() == []
        assert [t.name for t in db.scalars(select(TotpAuthenticator))] == ["phone"]
