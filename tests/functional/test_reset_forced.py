"""After an operator's forced reset the next sign-in needs the mailed link *and* the
second factor (issue 7): the old password is dead, sessions and tokens are gone, the
factor is untouched."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from idp.db import utcnow
from idp.models import AuditEvent, SsoSession
from idp.notify.queue import MailQueue
from tests.fixtures import csrf_from, sign_in
from tests.functional.mfa.flows import PASSWORD, enrol_totp, password_session, submit_code, totp_code

EMAIL = "alice@example.com"
NEW = "lighthouse porridge under tuesday"


def force_reset(app, email: str) -> None:  # type: ignore[no-untyped-def]
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        queue = MailQueue(registry.mail)
        assert services.force_reset.one(email, mail=queue)
        db.commit()
        queue.flush()


def test_next_sign_in_needs_the_reset_link_and_the_second_factor(app, client, make_user, outbox):
    user = make_user(EMAIL)
    password_session(client, EMAIL)
    secret, _codes = enrol_totp(client, outbox, EMAIL)
    assert client.get("/account").status_code == 200
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        shop, _ = services.clients.create(name="Shop", redirect_uris=["https://rp.example/cb"])
        _row, refresh = services.oauth_tokens.issue_refresh(
            client_id=shop.id, user_id=user.id, session_id=None, code_id=None, family_id=None, scope="openid",
            auth_time=utcnow(), amr=["pwd", "otp"], acr="urn:idp:acr:mfa")
        db.commit()

    force_reset(app, EMAIL)

    assert client.get("/account").status_code == 302  # the session ended
    with registry.sessionmaker() as db:
        assert registry.services(db).oauth_tokens.find_refresh(refresh).revoked_at is not None
        assert db.scalar(select(SsoSession).where(SsoSession.ended_at.is_(None))) is None
    # The old password no longer opens anything, and says no more than a wrong one.
    response = sign_in(app.test_client(), EMAIL, PASSWORD)
    assert response.status_code == 401
    assert "do not match an account" in response.get_data(as_text=True)

    link = outbox.last_link(EMAIL, "/reset/confirm")
    token = parse_qs(urlsplit(link).query)["token"][0]
    browser = app.test_client()
    page = browser.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert page.status_code == 200
    done = browser.post("/reset/confirm", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                "token": token, "new_password": NEW})
    assert done.status_code == 302 and done.headers["Location"] == "/login?reset=1"

    assert sign_in(browser, EMAIL, NEW).status_code == 302
    gate = browser.get("/account")
    assert gate.status_code == 302 and gate.headers["Location"].startswith("/mfa")  # second factor still asked
    assert submit_code(browser, totp_code(secret, steps=1)).status_code == 302
    assert browser.get("/account").status_code == 200  # no forced-change page left over
    with registry.sessionmaker() as db:
        kinds = [e.event for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert "password.force_reset" in kinds and "password.reset" in kinds
    assert "mfa.factor_removed" not in kinds


def test_a_user_requested_link_from_before_the_forced_reset_is_dead(app, client, make_user, outbox):
    make_user(EMAIL)
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        from idp.context import RequestContext

        registry.services(db).password_reset().request(EMAIL, ctx=RequestContext())
        db.commit()
    old = parse_qs(urlsplit(outbox.last_link(EMAIL, "/reset/confirm")).query)["token"][0]
    force_reset(app, EMAIL)
    assert client.get(f"/reset/confirm?token={old}").status_code == 400
    new = parse_qs(urlsplit(outbox.last_link(EMAIL, "/reset/confirm")).query)["token"][0]
    assert new != old and client.get(f"/reset/confirm?token={new}").status_code == 200


def test_a_passkey_session_after_a_forced_reset_is_pointed_to_the_reset_link(app, make_user, outbox):
    from tests.fixtures import start_session

    make_user(EMAIL)
    force_reset(app, EMAIL)
    browser = app.test_client()
    start_session(app, browser, EMAIL, amr=("hwk", "user"))  # usernameless passkey: no password used
    response = browser.get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/account/password")
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="no-password"' in page and 'href="/reset"' in page
    assert 'name="current_password"' not in page  # no form that could never succeed
