"""PasswordChangeService, including the ``set_new_password`` seam the reset flow uses."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.accounts.passwords import PasswordRejected
from idp.context import RequestContext
from idp.models import AuditEvent, User

GOOD = "ferret mandolin quietly orbits"
NEWER = "lighthouse porridge under tuesday"
BREACHED = "tangerine submarine forever 1987"
CTX = RequestContext(ip="192.0.2.1", user_agent="test")


def test_set_new_password_checks_policy_clears_the_flag_and_ends_every_session(app, make_user, breach):
    registry = app.extensions["idp"]
    make_user("user@example.com", GOOD)
    breach(BREACHED)
    with registry.sessionmaker() as db:
        services = registry.services(db)
        user = db.scalar(select(User).where(User.email == "user@example.com"))
        services.sessions.start(user, amr=["pwd"], ctx=CTX)
        services.sessions.start(user, amr=["pwd"], ctx=CTX)
        user.must_change_password = True
        with pytest.raises(PasswordRejected, match="data breach"):
            services.password_change.set_new_password(user, BREACHED, ctx=CTX, event="password.reset")
        assert user.must_change_password

        services.password_change.set_new_password(user, NEWER, ctx=CTX, event="password.reset")
        db.commit()
        assert not user.must_change_password
        assert registry.hasher.verify(user.password_hash, NEWER)
        assert services.sessions.active_for_user(user.id) == []
        [reset] = db.scalars(select(AuditEvent).where(AuditEvent.event == "password.reset")).all()
        assert reset.details == {"forced": True, "sessions_ended": 2}
        assert "tangerine" not in str(
            [e.details for e in db.scalars(select(AuditEvent))]
        )  # the audit log never holds a password


def test_the_same_password_is_not_a_change(app, make_user):
    registry = app.extensions["idp"]
    make_user("user@example.com", GOOD)
    with registry.sessionmaker() as db:
        user = db.scalar(select(User).where(User.email == "user@example.com"))
        with pytest.raises(PasswordRejected, match="password you have now"):
            registry.services(db).password_change.change(user, GOOD, GOOD, ctx=CTX, keep_session_id=None)
