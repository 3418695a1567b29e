"""CSRF: every form refuses a missing or wrong token with 400, and does nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.models import SsoSession, User
from tests.conftest import make_settings
from tests.fixtures import FOUNDATION_FORMS, get_csrf, start_session

# Password-only behaviour: the MFA gate (issue 4) is tested in tests/functional/mfa/.
pytestmark = pytest.mark.mfa_policy("optional")

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    """IDP_MFA_POLICY=optional: a password alone reaches the account page."""
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, mfa_policy="optional")


FORMS = FOUNDATION_FORMS


def wrong_tokens(app) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    other_browser = app.test_client()
    return {
        "missing": None,
        "empty": "",
        "garbage": "not-a-token",
        # A perfectly valid token, but minted for another browser (the attacker's own).
        "another-browsers": get_csrf(other_browser, "/login"),
    }


def state(app):  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        users = sorted(db.scalars(select(User.email)))
        live = sorted(db.scalars(select(SsoSession.id).where(SsoSession.ended_at.is_(None))))
    return users, live


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("token_kind", ["missing", "empty", "garbage", "another-browsers"])
def test_forged_form_posts_are_refused(app, make_user, form, token_kind):
    make_user("user@example.com", PASSWORD)
    needs_session, path_for, fields = FORMS[form]
    victim = app.test_client()
    if needs_session:
        start_session(app, victim, "user@example.com")
        # A second session, so "end other sessions" would have something to end.
        start_session(app, app.test_client(), "user@example.com")
    else:
        victim.get("/login")  # the victim has a flow cookie of their own
    path = path_for(victim)
    before = state(app)

    token = wrong_tokens(app)[token_kind]
    data = dict(fields)
    if token is not None:
        data["csrf_token"] = token
    response = victim.post(path, data=data)

    assert response.status_code == 400
    assert "This form has expired or was not sent from this site" in response.get_data(as_text=True)
    assert state(app) == before
    if needs_session:
        assert victim.get("/account").status_code == 200


@pytest.mark.parametrize("form", FORMS)
def test_the_right_token_is_accepted(app, make_user, form):
    """The other side of the tests above: the same request with the page's token works."""
    make_user("user@example.com", PASSWORD)
    needs_session, path_for, fields = FORMS[form]
    client = app.test_client()
    if needs_session:
        start_session(app, client, "user@example.com")
        start_session(app, app.test_client(), "user@example.com")
    data = dict(fields, csrf_token=get_csrf(client, "/account" if needs_session else "/login"))
    response = client.post(path_for(client), data=data)
    # verify-email with a made-up token is a 400 of its own kind, not a CSRF failure.
    assert "This form has expired" not in response.get_data(as_text=True)
    assert response.status_code in (200, 302) or form == "verify-email"


def test_token_sent_twice_is_refused(app, make_user):
    make_user("user@example.com", PASSWORD)
    client = app.test_client()
    token = get_csrf(client, "/login")
    body = f"csrf_token={token}&csrf_token=forged&username=user%40example.com&password=correct+horse+battery+staple"
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert client.get_cookie("idp_sso") is None
