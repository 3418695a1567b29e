"""No account enumeration: by message, by status, by work done, or by sign-up."""

from __future__ import annotations

import datetime as dt
import re

import argon2
import pytest
from sqlalchemy import select, update

from idp.models import AuditEvent, User
from tests.conftest import make_settings
from tests.fixtures import get_csrf

PASSWORD = "correct horse battery staple"
CSRF_VALUE_RE = re.compile(r'(name="csrf_token" value=")[^"]+(")')


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    """IDP_MFA_POLICY=optional: a password alone reaches the account page (under "required"
    it leads to the second-factor pages, which issue 4's tests cover)."""
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, mfa_policy="optional")


def comparable(response):  # type: ignore[no-untyped-def]
    """Status, headers and body with the per-browser CSRF token and cookie values blanked."""
    body = CSRF_VALUE_RE.sub(r"\1CSRF\2", response.get_data(as_text=True))
    headers = sorted(
        (k, re.sub(r"=[^;]*", "=VALUE", v, count=1) if k == "Set-Cookie" else v)
        for k, v in response.headers.items()
        if k != "Date"
    )
    return response.status_code, headers, body


def attempt(app, email: str, password: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = get_csrf(client, "/login")
    return client.post("/login", data={"csrf_token": token, "username": email, "password": password})


@pytest.fixture
def argon2_verifications(monkeypatch):  # type: ignore[no-untyped-def]
    """Every call into argon2-cffi's verify, with the hash it was verified against."""
    calls: list[str] = []
    original = argon2.PasswordHasher.verify

    def counting(self, hash, password):  # type: ignore[no-untyped-def]
        calls.append(hash if isinstance(hash, str) else hash.decode())
        return original(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return calls


def test_unknown_email_and_wrong_password_give_identical_responses(app, make_user):
    # The same address both times, so even the echoed username is the same.
    unknown = attempt(app, "target@example.com", "wrong password guess")
    make_user("target@example.com", PASSWORD)
    wrong = attempt(app, "target@example.com", "wrong password guess")
    assert unknown.status_code == 401
    assert comparable(unknown) == comparable(wrong)
    assert "That email and password do not match an account." in wrong.get_data(as_text=True)


@pytest.mark.parametrize("state", ["disabled", "no_password"])
def test_disabled_and_passwordless_accounts_look_like_unknown_ones(app, make_user, state):
    unknown = attempt(app, "target@example.com", PASSWORD)
    user = make_user("target@example.com", PASSWORD)
    values = {"disabled_at": dt.datetime.now(dt.UTC)} if state == "disabled" else {"password_hash": None}
    with app.extensions["idp"].sessionmaker() as db:
        db.execute(update(User).where(User.id == user.id).values(**values))
        db.commit()
    known = attempt(app, "target@example.com", PASSWORD)
    assert comparable(unknown) == comparable(known)


def test_unknown_email_still_runs_one_argon2_verification(app, make_user, argon2_verifications):
    user = make_user("known@example.com", PASSWORD)
    argon2_verifications.clear()

    attempt(app, "nobody@example.com", "wrong password guess")
    assert len(argon2_verifications) == 1
    unknown_hash = argon2_verifications[0]

    attempt(app, "known@example.com", "wrong password guess")
    assert len(argon2_verifications) == 2
    assert argon2_verifications[1] == user.password_hash

    # Same algorithm and cost parameters on both paths: the same work, so the same time.
    def parameters(phc: str) -> str:
        return "$".join(phc.split("$")[:4])

    assert parameters(unknown_hash) == parameters(user.password_hash)


def test_failures_are_told_apart_in_the_audit_log_only(app, make_user):
    attempt(app, "nobody@example.com", "wrong password guess")
    make_user("known@example.com", PASSWORD)
    attempt(app, "known@example.com", "wrong password guess")
    with app.extensions["idp"].sessionmaker() as db:
        reasons = [e.details["reason"] for e in db.scalars(
            select(AuditEvent).where(AuditEvent.event == "signin.failed").order_by(AuditEvent.seq))]
    assert reasons == ["unknown_account", "wrong_password"]


def register(app, email: str, password: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = get_csrf(client, "/register")
    return client.post("/register", data={"csrf_token": token, "username": email, "password": password})


def test_sign_up_with_an_existing_email_shows_the_same_page_and_mails_the_owner(app, outbox):
    first = register(app, "owner@example.com", PASSWORD)
    assert first.status_code == 200
    assert len(outbox.to("owner@example.com")) == 1  # the verification mail

    second = register(app, "Owner@Example.com", "attacker chosen password")
    assert comparable(second)[0] == comparable(first)[0]
    # The page echoes what was typed; typed the same, the pages are the same.
    third = register(app, "owner@example.com", "attacker chosen password")
    assert comparable(third) == comparable(first)

    mails = outbox.to("owner@example.com")
    assert len(mails) == 3
    for mail in mails[1:]:
        assert "already has one" in mail.get_body(preferencelist=("plain",)).get_content()
        assert "/verify-email" not in mail.get_body(preferencelist=("plain",)).get_content()

    # The attacker's password did not replace or add anything.
    with app.extensions["idp"].sessionmaker() as db:
        assert len(db.scalars(select(User)).all()) == 1
        user = db.scalars(select(User)).one()
    hasher = app.extensions["idp"].hasher
    assert hasher.verify(user.password_hash, PASSWORD)
    assert not hasher.verify(user.password_hash, "attacker chosen password")


def test_sign_up_hashes_the_password_for_existing_addresses_too(app, make_user, monkeypatch):
    make_user("owner@example.com", PASSWORD)
    hashes: list[str] = []
    original = argon2.PasswordHasher.hash

    def counting(self, password, **kwargs):  # type: ignore[no-untyped-def]
        hashes.append("x")
        return original(self, password, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "hash", counting)
    register(app, "owner@example.com", "attacker chosen password")
    register(app, "fresh@example.com", "another long password")
    assert len(hashes) == 2


def test_unverified_account_with_right_password_is_told_to_check_mail_not_signed_in(app, make_user, outbox):
    make_user("pending@example.com", PASSWORD, verified=False)
    before = len(outbox.to("pending@example.com"))
    response = attempt(app, "pending@example.com", PASSWORD)
    assert response.status_code == 403
    assert "Check your email" in response.get_data(as_text=True)
    assert len(outbox.to("pending@example.com")) == before + 1  # a fresh link
    # Wrong password on an unverified account looks like any wrong password.
    assert attempt(app, "pending@example.com", "wrong password guess").status_code == 401
