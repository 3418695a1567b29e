"""Stored passwords: argon2id, upgraded at sign-in when the parameters change; NFKC."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import create_app
from idp.models import AuditEvent, User
from tests.conftest import make_settings
from tests.fixtures import get_csrf, sign_in

# Password-only behaviour: the MFA gate (issue 4) is tested in tests/functional/mfa/.
pytestmark = pytest.mark.mfa_policy("optional")

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    """IDP_MFA_POLICY=optional: a password alone reaches the account page (under "required"
    it leads to the second-factor pages, which issue 4's tests cover)."""
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, mfa_policy="optional")


def stored_hash(app, email: str) -> str:  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        return db.scalar(select(User.password_hash).where(User.email == email))


def test_sign_up_stores_an_argon2id_hash_never_the_password(app, client, settings):
    token = get_csrf(client, "/register")
    client.post("/register", data={"csrf_token": token, "username": "new@example.com", "password": PASSWORD})
    stored = stored_hash(app, "new@example.com")
    assert stored.startswith(
        f"$argon2id$v=19$m={settings.argon2_memory_kib},t={settings.argon2_time_cost},p={settings.argon2_parallelism}$"
    )
    assert PASSWORD not in stored


def test_hash_is_upgraded_at_sign_in_after_a_parameter_change(app, make_user, database_url, redis_url, tmp_path):
    make_user("user@example.com", PASSWORD)
    old = stored_hash(app, "user@example.com")
    assert old.startswith("$argon2id$v=19$m=8,t=1,p=1$")

    # The operator raises the cost: a second app on the same database.
    stronger = create_app(make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path / "new",
                                        argon2_time_cost=2, argon2_memory_kib=16, argon2_parallelism=2))
    try:
        client = stronger.test_client()
        # A wrong password changes nothing.
        assert sign_in(client, "user@example.com", "wrong password guess").status_code == 401
        assert stored_hash(stronger, "user@example.com") == old

        assert sign_in(client, "user@example.com", PASSWORD).status_code == 302
        new = stored_hash(stronger, "user@example.com")
        assert new.startswith("$argon2id$v=19$m=16,t=2,p=2$")
        assert stronger.extensions["idp"].hasher.verify(new, PASSWORD)

        # Next sign-in: already current, no further rewrite.
        assert sign_in(stronger.test_client(), "user@example.com", PASSWORD).status_code == 302
        assert stored_hash(stronger, "user@example.com") == new
        with stronger.extensions["idp"].sessionmaker() as db:
            rehashed = db.scalars(select(AuditEvent).where(AuditEvent.event == "password.rehashed")).all()
        assert len(rehashed) == 1
    finally:
        stronger.extensions["idp"].engine.dispose()


def test_nfkc_equivalent_emails_are_one_account(app, client, outbox):
    token = get_csrf(client, "/register")
    response = client.post("/register", data={"csrf_token": token, "username": "ｍｉｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ",
                                              "password": PASSWORD})
    assert response.status_code == 200
    with app.extensions["idp"].sessionmaker() as db:
        assert db.scalars(select(User.email)).all() == ["miko@example.com"]
    assert len(outbox.to("miko@example.com")) == 1

    # The ASCII spelling is the same account: sign-up again mails the owner instead.
    token = get_csrf(client, "/register")
    client.post("/register", data={"csrf_token": token, "username": "MIKO@example.com", "password": PASSWORD})
    with app.extensions["idp"].sessionmaker() as db:
        assert len(db.scalars(select(User)).all()) == 1
    assert "already has one" in outbox.to("miko@example.com")[-1].get_body(preferencelist=("plain",)).get_content()


def test_nfkc_equivalent_spellings_sign_in_to_the_same_account(client, make_user):
    make_user("miko@example.com", "ｐａｓｓｗｏｒｄ ｏｎ ａ ｗｉｄｅ ｋｅｙｂｏａｒｄ")
    response = sign_in(client, "ｍｉｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", "password on a wide keyboard")
    assert response.status_code == 302
    registry = client.application.extensions["idp"]
    with registry.sessionmaker() as db:
        record = registry.services(db).sessions.resolve(client.get_cookie("idp_sso").value)
        assert record is not None
        assert registry.services(db).accounts.get(record.user_id).email == "miko@example.com"


def test_short_password_is_refused_on_sign_up_with_a_reason(client):
    token = get_csrf(client, "/register")
    response = client.post("/register", data={"csrf_token": token, "username": "new@example.com", "password": "short"})
    assert response.status_code == 400
    assert "Use at least 15 characters" in response.get_data(as_text=True)
