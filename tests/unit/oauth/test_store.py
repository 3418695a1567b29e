"""Codes, refresh tokens, access-token ids and consents against the real database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from idp.db import utcnow
from idp.models import AuditEvent, AuthorizationCode, RefreshToken
from idp.oauth.store import ReplayDetected


@pytest.fixture
def svc(app, make_user):
    registry = app.extensions["idp"]
    db = registry.sessionmaker()
    services = registry.services(db)
    user = make_user()
    client, _secret = services.clients.create(name="Shop", redirect_uris=["https://rp.example/cb"])
    db.commit()
    services.user = user
    services.client = client
    yield services
    db.close()


def _code(svc, code="the-code"):
    return svc.oauth_tokens.save_code(
        code, client_id=svc.client.id, user_id=svc.user.id, session_id="sess", redirect_uri="https://rp.example/cb",
        scope="openid", nonce="n", code_challenge="c" * 43, code_challenge_method="S256", auth_time=utcnow(),
        amr=["pwd"], acr="urn:idp:acr:pwd",
    )


def test_only_the_hash_of_a_code_is_stored(svc):
    row = _code(svc)
    assert row.code_hash != "the-code" and len(row.code_hash) == 64
    assert svc.db.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == "the-code")) is None


def test_code_is_single_use_and_replay_revokes_what_it_issued(svc):
    row = _code(svc)
    assert svc.oauth_tokens.redeem_code("the-code", client_id=svc.client.id, ctx=None).id == row.id
    refresh, _ = svc.oauth_tokens.issue_refresh(
        client_id=svc.client.id, user_id=svc.user.id, session_id="sess", code_id=row.id, family_id=None,
        scope="openid", auth_time=utcnow(), amr=["pwd"], acr="urn:idp:acr:pwd",
    )
    svc.oauth_tokens.record_access_token(
        jti="jti-1", client_id=svc.client.id, user_id=svc.user.id, session_id="sess", code_id=row.id,
        family_id=refresh.family_id, issued_at=utcnow(), expires_at=utcnow() + dt.timedelta(minutes=10),
    )
    svc.db.commit()
    assert svc.oauth_tokens.access_token("jti-1") is not None
    with pytest.raises(ReplayDetected):
        svc.oauth_tokens.redeem_code("the-code", client_id=svc.client.id, ctx=None)
    svc.db.commit()
    assert svc.oauth_tokens.access_token("jti-1") is None
    assert svc.db.get(RefreshToken, refresh.id).revoked_at is not None
    assert svc.db.scalar(select(AuditEvent).where(AuditEvent.event == "oauth.code_replayed")) is not None


def test_code_of_another_client_or_expired_is_unknown(svc):
    row = _code(svc)
    assert svc.oauth_tokens.redeem_code("the-code", client_id="someone-else", ctx=None) is None
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    svc.db.flush()
    assert svc.oauth_tokens.redeem_code("the-code", client_id=svc.client.id, ctx=None) is None
    assert svc.oauth_tokens.redeem_code("x" * 10_000, client_id=svc.client.id, ctx=None) is None


def test_refresh_rotation_and_reuse_detection(svc):
    first, secret1 = svc.oauth_tokens.issue_refresh(
        client_id=svc.client.id, user_id=svc.user.id, session_id=None, code_id=None, family_id=None,
        scope="openid", auth_time=utcnow(), amr=["pwd"], acr="urn:idp:acr:pwd",
    )
    assert first.token_hash != secret1
    used = svc.oauth_tokens.use_refresh(secret1, client_id=svc.client.id, ctx=None)
    assert used is not None and used.used_at is not None
    second, secret2 = svc.oauth_tokens.issue_refresh(
        client_id=svc.client.id, user_id=svc.user.id, session_id=None, code_id=None, family_id=first.family_id,
        scope="openid", auth_time=utcnow(), amr=["pwd"], acr="urn:idp:acr:pwd", expires_at=first.expires_at,
    )
    svc.db.commit()
    with pytest.raises(ReplayDetected):
        svc.oauth_tokens.use_refresh(secret1, client_id=svc.client.id, ctx=None)
    svc.db.commit()
    assert svc.oauth_tokens.use_refresh(secret2, client_id=svc.client.id, ctx=None) is None
    svc.db.expire_all()
    rows = svc.db.scalars(select(RefreshToken).where(RefreshToken.family_id == first.family_id)).all()
    assert rows and all(r.revoked_at is not None for r in rows)


def test_consent_covers_subsets_and_revoking_it_revokes_tokens(svc):
    consents = svc.consents
    assert not consents.covers(svc.user.id, svc.client.id, "openid")
    row = consents.grant(svc.user.id, svc.client.id, "openid email", ctx=None)
    assert consents.covers(svc.user.id, svc.client.id, "email openid")
    assert consents.covers(svc.user.id, svc.client.id, "openid")
    assert not consents.covers(svc.user.id, svc.client.id, "openid offline_access")
    svc.oauth_tokens.record_access_token(
        jti="jti-c", client_id=svc.client.id, user_id=svc.user.id, session_id=None, code_id=None, family_id=None,
        issued_at=utcnow(), expires_at=utcnow() + dt.timedelta(minutes=5),
    )
    svc.db.commit()
    assert not consents.revoke("another-user", row.id, ctx=None)
    assert consents.revoke(svc.user.id, row.id, ctx=None)
    svc.db.commit()
    assert not consents.covers(svc.user.id, svc.client.id, "openid")
    assert svc.oauth_tokens.access_token("jti-c") is None


def test_revoke_for_user_and_for_session(svc):
    _row, secret = svc.oauth_tokens.issue_refresh(
        client_id=svc.client.id, user_id=svc.user.id, session_id="sess-a", code_id=None, family_id=None,
        scope="openid", auth_time=utcnow(), amr=["pwd"], acr="urn:idp:acr:pwd",
    )
    for jti, session in (("j-a", "sess-a"), ("j-b", "sess-b")):
        svc.oauth_tokens.record_access_token(
            jti=jti, client_id=svc.client.id, user_id=svc.user.id, session_id=session, code_id=None,
            family_id=None, issued_at=utcnow(), expires_at=utcnow() + dt.timedelta(minutes=5),
        )
    svc.db.commit()
    assert svc.oauth_tokens.revoke_for_session("sess-a") == 2  # its access token and refresh token
    assert svc.oauth_tokens.access_token("j-a") is None and svc.oauth_tokens.access_token("j-b") is not None
    assert svc.oauth_tokens.revoke_for_user(svc.user.id) == 1
    assert svc.oauth_tokens.access_token("j-b") is None
