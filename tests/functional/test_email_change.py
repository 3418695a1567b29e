"""Changing the sign-in address through the pages (issue 7): one test per property, each
named after what it stops. MFA is required here (the default): the sessions are ones a
completed password + TOTP sign-in leaves (``start_session`` with both methods)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from idp.audit.verify import export_lines
from idp.crypto.tokens import sha256_hex
from idp.db import utcnow
from idp.models import AuditEvent, EmailToken, User
from tests.conftest import make_settings
from tests.fixtures import csrf_from, get_csrf, sign_in, start_session

OLD = "nina@example.com"
NEW = "nina.new@example.org"
OTHER = "oscar@example.com"
PASSWORD = "correct horse battery staple"
ISSUER = "http://localhost"
MFA = ("pwd", "otp")


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    # Many requests from one test client: the per-address limit (ip.reset) is tested on its own.
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path,
                         rate_limit_reset="1000 per minute")


@pytest.fixture
def nina(app, make_user):  # type: ignore[no-untyped-def]
    """Nina's account and a browser signed in to it with password and second factor."""
    user = make_user(OLD, PASSWORD)
    client = app.test_client()
    start_session(app, client, OLD, amr=MFA)
    return user, client


def ask(client, new_email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = get_csrf(client, "/account/email")
    response = client.post("/account/email", data={"csrf_token": token, "new_email": new_email,
                                                    "current_password": password})
    response.close()  # as a WSGI server does once the answer is sent: the mail leaves then
    return response


def link_of(outbox, address: str = NEW) -> str:  # type: ignore[no-untyped-def]
    link = outbox.last_link(address, "/account/email/confirm")
    assert link.startswith(ISSUER + "/account/email/confirm?token="), link
    return link


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def confirm(client, token: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/account/email/confirm?token={token}")
    csrf = csrf_from(page.get_data(as_text=True)) if page.status_code == 200 else get_csrf(client, "/login")
    response = client.post("/account/email/confirm", data={"csrf_token": csrf, "token": token})
    response.close()
    return response


def text_of(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(preferencelist=("html",)).get_content()


def email_of(app, user_id: str) -> tuple[str, dt.datetime | None]:  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        user = db.get(User, user_id)
        return user.email, user.email_verified_at


def events(app, prefix: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event.startswith(prefix))
                               .order_by(AuditEvent.seq)))


def edit(app, stmt) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        db.execute(stmt)
        db.commit()


# ------------------------------------------------------------------- the way in
def test_the_account_page_offers_the_change(nina):
    _, client = nina
    page = client.get("/account").get_data(as_text=True)
    assert 'data-testid="change-email"' in page and 'href="/account/email"' in page


def test_a_visitor_without_a_session_is_sent_to_sign_in(client, make_user):
    make_user(OLD, PASSWORD)
    response = client.get("/account/email")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    response = client.post("/account/email", data={"new_email": NEW, "current_password": PASSWORD})
    assert response.status_code in (302, 400)  # no session, and no CSRF token either


def test_a_password_only_session_cannot_change_the_address(app, client, make_user, outbox):
    # Under the required policy a password alone never reaches an account page.
    make_user(OLD, PASSWORD)
    start_session(app, client, OLD, amr=("pwd",))
    response = client.get("/account/email")
    assert response.status_code == 302 and "/mfa" in response.headers["Location"]
    assert outbox.to(NEW) == []


def test_a_session_rider_without_the_password_cannot_start_a_change(app, nina, outbox):
    user, client = nina
    response = ask(client, NEW, password="not the password at all")
    assert response.status_code == 400
    assert "current password is not correct" in response.get_data(as_text=True)
    assert outbox.to(NEW) == [] and outbox.to(OLD) == []
    assert email_of(app, user.id)[0] == OLD
    [failed] = events(app, "email_change.failed")
    assert failed.details["reason"] == "wrong_current_password" and failed.user_id == user.id


# ---------------------------------------------------------------- the whole way
def test_the_new_address_confirms_by_link_and_the_old_one_is_told_twice(app, nina, outbox):
    user, client = nina
    response = ask(client, NEW)
    assert response.status_code == 200
    assert NEW in response.get_data(as_text=True)
    # Nothing changed yet: the new mailbox has to prove itself.
    assert email_of(app, user.id)[0] == OLD

    [notice] = outbox.to(OLD)
    assert "n***@example.org" in text_of(notice) and NEW not in notice.as_string()
    link = link_of(outbox)
    [mail] = outbox.to(NEW)
    assert link in text_of(mail) and f'href="{link}"' in html_of(mail)

    # Opening the link (as a mail scanner would) spends nothing.
    for _ in range(2):
        page = client.get(link[len(ISSUER):])
        assert page.status_code == 200 and 'data-testid="confirm-email-change"' in page.get_data(as_text=True)
    assert email_of(app, user.id)[0] == OLD

    response = confirm(app.test_client(), token_of(link))  # a fresh browser: the link is enough
    assert response.status_code == 200 and 'data-testid="email-changed"' in response.get_data(as_text=True)
    email, verified_at = email_of(app, user.id)
    assert email == NEW and verified_at is not None
    done = outbox.to(OLD)[-1]
    assert "was changed to n***@example.org" in " ".join(text_of(done).split())
    assert NEW not in done.as_string()

    # From now on the account signs in with the new address only.
    assert sign_in(app.test_client(), OLD, PASSWORD).status_code == 401
    assert sign_in(app.test_client(), NEW, PASSWORD).status_code == 302
    assert [e.event for e in events(app, "email")] == ["email_change.requested", "email.changed"]


def test_the_new_address_is_normalised_like_at_sign_up(app, nina, outbox):
    user, client = nina
    assert ask(client, "  Nina.New@EXAMPLE.org ").status_code == 200
    confirm(client, token_of(link_of(outbox, NEW)))
    assert email_of(app, user.id)[0] == NEW


@pytest.mark.parametrize("typed", ["not an address", "nina@", "a@b@example.com", "x" * 300 + "@example.com",
                                   "nina.new@example.org\r\nBcc: attacker@evil.example", "", "\x00@example.org",
                                   "\u202enina@example.org", "é" * 300, "x" * 5000, "nina@exa\ufffdmple.org"])
def test_an_invalid_address_gets_a_clear_400_and_no_mail(app, nina, outbox, typed):
    user, client = nina
    response = ask(client, typed)
    assert response.status_code == 400 and 'data-testid="error"' in response.get_data(as_text=True)
    assert len(outbox.messages()) == 0 and email_of(app, user.id)[0] == OLD


def test_the_current_address_is_not_a_change(nina, outbox):
    _, client = nina
    response = ask(client, OLD.upper())
    assert response.status_code == 400 and "already the address" in response.get_data(as_text=True)
    assert outbox.messages() == []


# --------------------------------------------------------------- no enumeration
def test_an_address_of_another_account_answers_exactly_as_a_free_one(app, nina, make_user, outbox):
    user, client = nina
    make_user(OTHER, PASSWORD)
    free = "oscar@example.net"  # same length as OTHER: the pages can be compared byte for byte
    assert len(free) == len(OTHER)
    answers = {}
    for address in (free, OTHER):
        response = ask(client, address)
        assert response.status_code == 200
        answers[address] = response.get_data(as_text=True).replace(address, "ADDRESS")
    assert answers[free] == answers[OTHER]

    # The owner of the taken address is warned, and gets no link.
    warning = outbox.to(OTHER)[-1]
    assert "already belongs to your account" in " ".join(text_of(warning).split())
    assert "/account/email/confirm" not in warning.as_string()
    # Nina's old address heard of both requests alike.
    notices = outbox.to(OLD)
    assert len(notices) == 2 and text_of(notices[0]).replace("o***@example.net", "X") == \
        text_of(notices[1]).replace("o***@example.com", "X")
    # Nothing that could be confirmed exists for the taken address; the audit log knows.
    with app.extensions["idp"].sessionmaker() as db:
        live = db.scalars(select(EmailToken).where(EmailToken.purpose == "email_change",
                                                   EmailToken.used_at.is_(None))).all()
    assert [t.email for t in live] == []  # the free address's link died with the later request
    outcomes = [e.details["outcome"] for e in events(app, "email_change.requested")]
    assert outcomes == ["link_sent", "address_taken"]
    assert email_of(app, user.id)[0] == OLD


# ------------------------------------------------------------------- the link
def test_the_link_is_random_stored_as_a_hash_and_lives_an_hour(app, nina, outbox):
    _, client = nina
    ask(client, NEW)
    token = token_of(link_of(outbox))
    assert len(token) >= 43  # 256 bits in base64url
    with app.extensions["idp"].sessionmaker() as db:
        [row] = db.scalars(select(EmailToken).where(EmailToken.purpose == "email_change"))
        assert row.token_hash == sha256_hex(token) and token not in str(vars(row))
        assert row.email == NEW
        assert row.expires_at - row.created_at == dt.timedelta(hours=1)


def test_a_used_link_fails_with_a_clear_page(app, nina, outbox):
    user, client = nina
    ask(client, NEW)
    token = token_of(link_of(outbox))
    assert confirm(client, token).status_code == 200
    for response in (client.get(f"/account/email/confirm?token={token}"),
                     client.post("/account/email/confirm",
                                 data={"csrf_token": get_csrf(client, "/account"), "token": token})):
        assert response.status_code == 400
        assert "invalid, was already used, or has expired" in response.get_data(as_text=True)


def test_an_expired_link_fails_with_a_clear_page(app, nina, outbox):
    user, client = nina
    ask(client, NEW)
    token = token_of(link_of(outbox))
    edit(app, update(EmailToken).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    response = confirm(client, token)
    assert response.status_code == 400 and "has expired" in response.get_data(as_text=True)
    assert email_of(app, user.id)[0] == OLD
    assert events(app, "email_change.link_failed")[-1].details["reason"] == "expired"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character changed
    lambda t: t[:20],
    lambda t: t + "&token=" + t,  # two tokens
    lambda t: "%00" + t,
    lambda t: "<script>",
    lambda t: "\u202e" + t,
])
def test_a_tampered_link_fails_with_a_clear_page(app, nina, outbox, mangle):
    user, client = nina
    ask(client, NEW)
    token = token_of(link_of(outbox))
    response = client.get(f"/account/email/confirm?token={mangle(token)}")
    assert response.status_code == 400 and "invalid" in response.get_data(as_text=True)
    csrf = get_csrf(client, "/account")
    response = client.post("/account/email/confirm", data={"csrf_token": csrf, "token": mangle(token)})
    assert response.status_code == 400
    assert email_of(app, user.id)[0] == OLD
    assert confirm(client, token).status_code == 200  # the real one still works


def test_a_later_request_kills_the_earlier_link(app, nina, outbox):
    user, client = nina
    ask(client, "first@example.org")
    first = token_of(link_of(outbox, "first@example.org"))
    ask(client, NEW)
    assert confirm(client, first).status_code == 400
    assert confirm(client, token_of(link_of(outbox))).status_code == 200
    assert email_of(app, user.id)[0] == NEW


def test_changing_the_password_cancels_a_pending_change(app, nina, outbox):
    # What the notice to the old address tells its owner to do if it was not them.
    user, client = nina
    ask(client, "attacker@evil.example")
    token = token_of(link_of(outbox, "attacker@evil.example"))
    owner = app.test_client()
    start_session(app, owner, OLD, amr=MFA)
    response = owner.post("/account/password", data={"csrf_token": get_csrf(owner, "/account/password"),
                                                     "current_password": PASSWORD,
                                                     "new_password": "lighthouse porridge under tuesday"})
    assert response.status_code == 302
    attacker = app.test_client()
    assert confirm(attacker, token).status_code == 400
    assert email_of(app, user.id)[0] == OLD


def test_confirming_kills_reset_links_mailed_to_the_old_address(app, nina, outbox):
    user, client = nina
    reset_page = app.test_client()
    reset_page.post("/reset", data={"csrf_token": get_csrf(reset_page, "/reset"), "username": OLD}).close()
    reset_link = outbox.last_link(OLD, "/reset/confirm")
    ask(client, NEW)
    assert confirm(client, token_of(link_of(outbox))).status_code == 200
    with app.extensions["idp"].sessionmaker() as db:
        row = db.scalar(select(EmailToken).where(EmailToken.purpose == "reset_password"))
        assert row.used_at is not None
    response = app.test_client().get(reset_link[len(ISSUER):])
    assert response.status_code == 400


def test_the_address_is_checked_again_at_confirmation(app, nina, make_user, outbox):
    user, client = nina
    ask(client, NEW)
    token = token_of(link_of(outbox))
    make_user(NEW, PASSWORD)  # someone registered the address meanwhile
    response = confirm(client, token)
    assert response.status_code == 400 and "belongs to another account" in response.get_data(as_text=True)
    assert email_of(app, user.id)[0] == OLD
    assert events(app, "email_change.link_failed")[-1].details["reason"] == "address_taken"


def test_the_link_changes_the_account_that_asked_whoever_opens_it(app, nina, make_user, outbox):
    user, client = nina
    other = make_user(OTHER, PASSWORD)
    ask(client, NEW)
    token = token_of(link_of(outbox))
    oscar = app.test_client()
    start_session(app, oscar, OTHER, amr=MFA)
    assert confirm(oscar, token).status_code == 200
    assert email_of(app, user.id)[0] == NEW and email_of(app, other.id)[0] == OTHER


def test_one_account_cannot_flood_inboxes_with_requests(app, nina, outbox):
    _, client = nina
    for n in range(3):
        assert ask(client, f"target{n}@example.org").status_code == 200
    response = ask(client, "target3@example.org")
    assert response.status_code == 429
    assert outbox.to("target3@example.org") == []


# --------------------------------------------------------------- mail and audit
def test_a_typed_address_is_escaped_in_the_html_mail(app, nina, outbox):
    _, client = nina
    typed = "o'neil&co@example.org"  # RFC 5322 atext: both characters are valid in a local part
    assert ask(client, typed).status_code == 200
    [mail] = outbox.to(typed)
    html = html_of(mail)
    assert "o&#39;neil&amp;co@example.org" in html and typed not in html
    assert typed in text_of(mail)


def test_addresses_reach_the_audit_log_masked_only(app, nina, outbox):
    _, client = nina
    ask(client, NEW)
    confirm(client, token_of(link_of(outbox)))
    with app.extensions["idp"].sessionmaker() as db:
        lines = [line for line in export_lines(db) if '"event":"email' in line]
    assert len(lines) == 2
    for line in lines:
        assert NEW not in line and OLD not in line
    assert "n***@example.org" in lines[0] and "n***@example.com" in lines[1]


def test_an_account_without_a_password_is_sent_to_the_reset(app, nina, outbox):
    user, client = nina
    edit(app, update(User).where(User.id == user.id).values(password_hash=None))
    page = client.get("/account/email")
    assert page.status_code == 200 and 'data-testid="no-password"' in page.get_data(as_text=True)
    assert 'name="new_email"' not in page.get_data(as_text=True)


def test_the_link_and_the_password_reach_neither_the_audit_log_nor_the_application_log(app, nina, outbox, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    _, client = nina
    ask(client, NEW, password="a wrong password 123")
    ask(client, NEW)
    token = token_of(link_of(outbox))
    confirm(client, token[:-1] + ("A" if token[-1] != "A" else "B"))  # a tampered one is not logged either
    confirm(client, token)
    with app.extensions["idp"].sessionmaker() as db:
        audit = "\n".join(export_lines(db))
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "email.changed" in audit
    for secret in (token, token[:12], token[-12:], PASSWORD, "a wrong password 123"):
        assert secret not in audit and secret not in logged


def test_a_cross_site_form_can_neither_ask_nor_confirm(app, nina, outbox):
    user, client = nina
    response = client.post("/account/email", data={"new_email": NEW, "current_password": PASSWORD})
    assert response.status_code == 400 and outbox.messages() == []
    ask(client, NEW)
    token = token_of(link_of(outbox))
    response = client.post("/account/email/confirm", data={"token": token})
    assert response.status_code == 400 and email_of(app, user.id)[0] == OLD
    assert confirm(client, token).status_code == 200
