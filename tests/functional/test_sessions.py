"""SSO sessions: fixation, flow-cookie rotation, lifetimes, ending sessions."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from idp.models import AuditEvent, SsoSession, User
from tests.conftest import make_settings
from tests.fixtures import get_csrf, sign_in, start_session

PASSWORD = "correct horse battery staple"
SSO = "idp_sso"  # the test issuer is plain-http localhost: no __Host- prefix there
FLOW = "idp_flow"
SESSION_ID_RE = re.compile(r'data-session-id="([^"]+)"')


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    """IDP_MFA_POLICY=optional: a password session reaches the account page (under
    "required" it leads to the second-factor pages, which issue 4's tests cover)."""
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, mfa_policy="optional")


def cookie(client, name):  # type: ignore[no-untyped-def]
    found = client.get_cookie(name)
    return found.value if found is not None else None


def live_session(app, secret):  # type: ignore[no-untyped-def]
    """The live session a cookie secret opens, asked of the server itself."""
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        record = registry.services(db).sessions.resolve(secret)
        db.commit()
        return record


def user_id(app, email):  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        return db.scalar(select(User.id).where(User.email == email))


def session_ids(client) -> list[str]:  # type: ignore[no-untyped-def]
    page = client.get("/account")
    assert page.status_code == 200
    return SESSION_ID_RE.findall(page.get_data(as_text=True))


def signed_in(client) -> bool:  # type: ignore[no-untyped-def]
    return client.get("/account").status_code == 200


def db_session(app):  # type: ignore[no-untyped-def]
    return app.extensions["idp"].sessionmaker()


# ------------------------------------------------------------------ fixation
def test_session_fixation_planted_cookie_is_replaced_at_sign_in(app, client, make_user):
    make_user("victim@example.com", PASSWORD)
    planted = "attacker-chosen-value-that-the-victim-carries-0123456789"
    client.set_cookie(SSO, planted)
    response = sign_in(client, "victim@example.com", PASSWORD)
    assert response.status_code == 302
    after = cookie(client, SSO)
    assert after is not None and after != planted
    record = live_session(app, after)
    assert record is not None and record.user_id == user_id(app, "victim@example.com")
    # The planted value opens nothing.
    assert live_session(app, planted) is None


def test_session_fixation_a_known_session_cookie_is_replaced_and_ended(app, client, make_user):
    """The attacker plants a real session cookie (their own account's); the victim signs in."""
    make_user("attacker@example.com", PASSWORD)
    make_user("victim@example.com", PASSWORD)
    planted_id = start_session(app, client, "attacker@example.com")
    planted = cookie(client, SSO)

    assert sign_in(client, "victim@example.com", PASSWORD).status_code == 302
    after = cookie(client, SSO)
    assert after != planted
    assert live_session(app, after).user_id == user_id(app, "victim@example.com")
    assert live_session(app, planted) is None
    with db_session(app) as db:
        assert db.get(SsoSession, planted_id).end_reason == "replaced"


def test_signing_in_again_issues_a_new_secret_and_ends_the_old(app, client, make_user):
    make_user("victim@example.com", PASSWORD)
    sign_in(client, "victim@example.com", PASSWORD)
    first = cookie(client, SSO)
    sign_in(client, "victim@example.com", PASSWORD)
    second = cookie(client, SSO)
    assert first and second and first != second
    assert live_session(app, first) is None  # whoever copied the first cookie is out
    assert live_session(app, second) is not None


def test_flow_cookie_and_csrf_token_are_rotated_at_sign_in(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    before_token = get_csrf(client, "/login")
    before_flow = cookie(client, FLOW)
    assert before_flow
    response = client.post("/login", data={"csrf_token": before_token, "username": "user@example.com",
                                           "password": PASSWORD})
    assert response.status_code == 302
    assert cookie(client, FLOW) != before_flow
    get_csrf(client, "/logout")
    assert cookie(client, FLOW) not in (None, before_flow)
    # A token picked up before sign-in (a script on a shared machine, a planted flow
    # cookie) is dead now: the signed-in browser's forms need the new one.
    response = client.post("/logout", data={"csrf_token": before_token})
    assert response.status_code == 400
    assert live_session(app, cookie(client, SSO)) is not None


def test_sso_cookie_is_httponly_samesite_lax_and_host_only(client, make_user):
    make_user("user@example.com", PASSWORD)
    response = sign_in(client, "user@example.com", PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(SSO + "="))
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in header.lower()
    assert "path=/" in header.lower()
    assert "domain" not in attributes


def test_the_database_holds_only_a_hash_of_the_cookie(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    sign_in(client, "user@example.com", PASSWORD)
    secret = cookie(client, SSO)
    with db_session(app) as db:
        record = db.scalars(select(SsoSession)).one()
    assert secret not in (record.token_hash, record.id)
    assert len(secret) >= 43  # 256 random bits


# ------------------------------------------------------------------ lifetimes
def _age_sessions(app, **values) -> None:  # type: ignore[no-untyped-def]
    with db_session(app) as db:
        db.execute(update(SsoSession).values(**values))
        db.commit()


def test_idle_session_is_ended(app, client, make_user, settings):
    make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    now = dt.datetime.now(dt.UTC)
    # Just inside the idle limit: still signed in.
    _age_sessions(app, last_seen_at=now - dt.timedelta(seconds=settings.session_idle_seconds - 30))
    assert signed_in(client)
    # Past it: signed out, and the record says why.
    _age_sessions(app, last_seen_at=now - dt.timedelta(seconds=settings.session_idle_seconds + 1))
    response = client.get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    with db_session(app) as db:
        record = db.scalars(select(SsoSession)).one()
        assert record.ended_at is not None and record.end_reason == "idle"
        assert db.scalar(select(AuditEvent).where(AuditEvent.event == "session.ended")) is not None
    # Activity after the end does not revive it.
    _age_sessions(app, last_seen_at=now)
    assert not signed_in(client)


def test_activity_keeps_a_session_alive(app, client, make_user, settings):
    make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    now = dt.datetime.now(dt.UTC)
    _age_sessions(app, last_seen_at=now - dt.timedelta(seconds=settings.session_idle_seconds - 5))
    assert signed_in(client)  # this request counts as activity...
    with db_session(app) as db:
        seen = db.scalars(select(SsoSession.last_seen_at)).one()
    assert now - seen < dt.timedelta(seconds=60)  # ...so the idle clock restarted


def test_absolute_lifetime_ends_an_active_session(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    now = dt.datetime.now(dt.UTC)
    # Busy all along (seen a moment ago) but past its absolute end.
    _age_sessions(app, last_seen_at=now, expires_at=now - dt.timedelta(seconds=1))
    assert not signed_in(client)
    with db_session(app) as db:
        assert db.scalars(select(SsoSession.end_reason)).one() == "expired"


def test_absolute_end_and_cookie_lifetime_come_from_settings(app, client, make_user, settings):
    make_user("user@example.com", PASSWORD)
    response = sign_in(client, "user@example.com", PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(SSO + "="))
    assert f"Max-Age={settings.session_max_seconds}" in header
    with db_session(app) as db:
        record = db.scalars(select(SsoSession)).one()
    assert record.expires_at - record.created_at == dt.timedelta(seconds=settings.session_max_seconds)


# ------------------------------------------------------------- ending sessions
def test_account_page_lists_this_session(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    own = start_session(app, client, "user@example.com")
    page = client.get("/account").get_data(as_text=True)
    assert session_ids(client) == [own]
    assert 'data-current="true"' in page and "End this session" in page


def test_end_this_session_signs_this_browser_out(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    own = start_session(app, client, "user@example.com")
    token = get_csrf(client, "/account")
    response = client.post(f"/account/sessions/{own}/end", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert cookie(client, SSO) is None
    assert not signed_in(client)
    with db_session(app) as db:
        assert db.get(SsoSession, own).end_reason == "ended_by_user"


def test_end_all_other_sessions_keeps_only_this_one(app, make_user):
    make_user("user@example.com", PASSWORD)
    make_user("bystander@example.com", PASSWORD)
    laptop, phone, tablet, bystander = (app.test_client() for _ in range(4))
    for device in (laptop, phone, tablet):
        start_session(app, device, "user@example.com")
    start_session(app, bystander, "bystander@example.com")
    assert len(session_ids(laptop)) == 3
    assert "End all other sessions" in laptop.get("/account").get_data(as_text=True)

    response = laptop.post("/account/sessions/end-others", data={"csrf_token": get_csrf(laptop, "/account")})
    assert response.status_code == 302
    assert "Signed out 2 other sessions." in laptop.get("/account").get_data(as_text=True)
    assert signed_in(laptop)
    assert not signed_in(phone) and not signed_in(tablet)
    assert signed_in(bystander)  # another account's sessions are untouched
    assert len(session_ids(laptop)) == 1


def test_a_user_cannot_end_another_users_session(app, make_user):
    make_user("alice@example.com", PASSWORD)
    make_user("bob@example.com", PASSWORD)
    alice, bob = app.test_client(), app.test_client()
    start_session(app, alice, "alice@example.com")
    bobs_session = start_session(app, bob, "bob@example.com")

    response = alice.post(f"/account/sessions/{bobs_session}/end", data={"csrf_token": get_csrf(alice, "/account")})
    assert response.status_code == 302
    assert "That session had already ended." in alice.get("/account").get_data(as_text=True)
    assert signed_in(bob)
    assert signed_in(alice)
    with db_session(app) as db:
        assert db.get(SsoSession, bobs_session).ended_at is None
    assert bobs_session not in session_ids(alice)  # nor can Alice see it


def test_ending_an_unknown_or_overlong_session_id_is_harmless(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    token = get_csrf(client, "/account")
    for bogus in ("does-not-exist", "x" * 300):
        response = client.post(f"/account/sessions/{bogus}/end", data={"csrf_token": token})
        assert response.status_code == 302
    assert signed_in(client)


def test_sign_out_ends_the_session_server_side(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    secret = cookie(client, SSO)
    response = client.post("/logout", data={"csrf_token": get_csrf(client, "/account")})
    assert response.status_code == 302
    assert cookie(client, SSO) is None
    # A copy of the cookie taken before sign-out is worthless afterwards.
    assert live_session(app, secret) is None
    with db_session(app) as db:
        assert db.scalars(select(SsoSession.end_reason)).one() == "signed_out"
        events = set(db.scalars(select(AuditEvent.event)))
    assert {"session.started", "session.ended", "signout"} <= events


def test_get_logout_only_asks(app, client, make_user):
    make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    page = client.get("/logout")
    assert page.status_code == 200 and 'method="post"' in page.get_data(as_text=True)
    assert signed_in(client)


def test_disabled_account_session_stops_working(app, client, make_user):
    user = make_user("user@example.com", PASSWORD)
    start_session(app, client, "user@example.com")
    assert signed_in(client)
    with db_session(app) as db:
        db.execute(update(User).where(User.id == user.id).values(disabled_at=dt.datetime.now(dt.UTC)))
        db.commit()
    assert not signed_in(client)


def test_unauthenticated_account_visit_leads_to_sign_in(client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Faccount"
    assert client.get(response.headers["Location"]).status_code == 200
