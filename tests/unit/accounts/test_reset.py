"""PasswordResetService without HTTP: who gets mail, what is stored, what work is done."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select

from idp.accounts.passwords import PasswordRejected
from idp.context import RequestContext
from idp.crypto.tokens import sha256_hex
from idp.errors import InvalidToken
from idp.models import AuditEvent, EmailToken
from idp.notify.queue import MailQueue

CTX = RequestContext(ip="192.0.2.1", user_agent="test")
NEW = "lighthouse porridge under tuesday"


def _request(app, typed: str) -> MailQueue:  # type: ignore[no-untyped-def]
    registry = app.extensions["idp"]
    queue = MailQueue(registry.mail)
    with registry.sessionmaker() as db:
        registry.services(db).password_reset(mail=queue).request(typed, ctx=CTX)
        db.commit()
    return queue


def test_the_recipient_is_the_stored_address_whatever_was_typed(app, make_user):
    make_user("alice@example.com")
    assert [m.to for m in _request(app, "ALICE@EXAMPLE.COM").pending] == ["alice@example.com"]
    for typed in ("alice@example.com, eve@evil.example", "alice@example.com\nBcc: eve@evil.example",
                  "Eve <alice@example.com>", "x" * 2000, "\U0001F600" * 300, ""):
        assert _request(app, typed).pending == []


def test_nothing_is_mailed_before_the_caller_sends(app, make_user, outbox):
    make_user("alice@example.com")
    queue = _request(app, "alice@example.com")
    assert [m for m in outbox.messages() if "Reset" in m["Subject"]] == []
    assert queue.flush() == 1
    assert [m["To"] for m in outbox.messages() if "Reset" in m["Subject"]] == ["alice@example.com"]


def test_known_and_unknown_accounts_run_the_same_queries(app, make_user):
    make_user("alice@example.com")
    engine = app.extensions["idp"].engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        seen.append(re.sub(r"\s+", " ", statement.split(" FROM ")[0] if statement.startswith("SELECT")
                           else statement.split("(")[0]).strip())

    event.listen(engine, "before_cursor_execute", record)
    try:
        _request(app, "alice@example.com")
        known, seen[:] = list(seen), []
        _request(app, "nobody@example.com")
        unknown = list(seen)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    reads = lambda statements: [s for s in statements if s.startswith("SELECT")]  # noqa: E731
    assert reads(known) == reads(unknown)
    # The one difference: the token row itself (there is no account to attach one to).
    extra = list(known)
    for statement in unknown:
        extra.remove(statement)
    assert [s for s in extra if "email_tokens" in s] == extra and len(extra) == 1


def test_outcomes_are_in_the_audit_log_not_in_the_answer(app, make_user):
    make_user("alice@example.com")
    make_user("new@example.com", verified=False)
    for typed in ("alice@example.com", "nobody@example.com", "new@example.com", "not an address"):
        _request(app, typed)
    with app.extensions["idp"].sessionmaker() as db:
        outcomes = [e.details["outcome"] for e in db.scalars(
            select(AuditEvent).where(AuditEvent.event == "password.reset_requested").order_by(AuditEvent.seq))]
        tokens = list(db.scalars(select(EmailToken).where(EmailToken.purpose == "reset_password")))
    assert outcomes == ["sent", "unknown_account", "verification_sent", "not_an_address"]
    assert len(tokens) == 1


def test_a_rejected_password_leaves_the_link_usable_and_a_used_one_is_refused(app, make_user, breach):
    make_user("alice@example.com")
    breach("tangerine submarine forever 1987")
    queue = _request(app, "alice@example.com")
    token = re.search(r"token=([A-Za-z0-9_-]+)", queue.pending[0].context["link"]).group(1)
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        service = registry.services(db).password_reset(mail=MailQueue(registry.mail))
        with pytest.raises(PasswordRejected):
            service.complete(token, "tangerine submarine forever 1987", ctx=CTX)
        db.commit()
        assert db.scalar(select(EmailToken).where(EmailToken.token_hash == sha256_hex(token))).used_at is None
        service.complete(token, NEW, ctx=CTX)
        db.commit()
        with pytest.raises(InvalidToken):
            service.complete(token, "another fine password here", ctx=CTX)
        for garbage in (None, 42, "", "x" * 10_000, "a" * 43, "\u202e" * 43):
            with pytest.raises(InvalidToken):
                service.check(garbage, ctx=CTX)
