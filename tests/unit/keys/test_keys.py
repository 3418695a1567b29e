"""Signing keys: day-one keys, encryption at rest, rotation and retirement, verification."""

from __future__ import annotations

import datetime as dt

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.keys import KeyCache, KeyService, SigningKeyError, SqlKeyStore
from idp.keys import jose
from idp.keys.jose import InvalidJwt
from idp.oauth.tokens import TokenMinter


@pytest.fixture
def keys(app):
    registry = app.extensions["idp"]
    db = registry.sessionmaker()
    service = KeyService(store=SqlKeyStore(db), kek=registry.kek, cache=KeyCache(ttl=0))
    yield service
    db.close()


def test_several_keys_from_day_one(keys):
    rows = keys.list()
    assert sorted((r.alg, r.state) for r in rows) == [("ES256", "active"), ("ES256", "next"), ("EdDSA", "active")]
    jwks = keys.ring().jwks()["keys"]
    assert len(jwks) == 3 and all("d" not in k for k in jwks)


def test_private_keys_are_encrypted_with_the_kek(keys, app):
    for row in keys.list():
        assert b"PRIVATE KEY" not in row.private_key_encrypted
        # Bound to its kid: the ciphertext does not decrypt as another key's.
        other = next(r for r in keys.list() if r.kid != row.kid)
        from idp.crypto.kek import KekError

        with pytest.raises(KekError):
            app.extensions["idp"].kek.decrypt(row.private_key_encrypted, purpose="signing-key:" + other.kid)


def test_rotate_promotes_a_standby_published_long_enough_at_once(keys):
    # upcoming_seconds=0: the day-one standby has been published "long enough" already.
    keys.upcoming = dt.timedelta(0)
    old_signer = keys.ring().signer("ES256")
    standby = next(k for k in keys.ring().keys.values() if k.state == "next")
    promoted = keys.rotate("ES256")
    keys.store.db.commit()
    ring = keys.ring()
    assert promoted.kid == standby.kid
    assert ring.signer("ES256").kid == promoted.kid != old_signer.kid
    assert ring.verifier(old_signer.kid) is not None  # still verifies during the overlap
    # A fresh standby takes the promoted one's place.
    assert sum(1 for k in ring.keys.values() if k.state == "next" and k.alg == "ES256") == 1


def test_retired_key_leaves_the_jwks_and_its_tokens_are_rejected(keys):
    keys.upcoming = dt.timedelta(0)
    minter = TokenMinter(keys=keys, issuer="http://localhost")
    signer = keys.ring().signer("ES256")
    token = jose.sign({"iss": "http://localhost", "exp": 4_000_000_000, "iat": 1}, key=signer.private, alg="ES256",
                      kid=signer.kid, typ="at+jwt")
    assert minter.verify(token)["iss"] == "http://localhost"
    with pytest.raises(SigningKeyError):
        keys.retire(signer.kid)  # the only active ES256 key
    keys.rotate("ES256")
    keys.retire(signer.kid)
    keys.store.db.commit()
    assert signer.kid not in {k["kid"] for k in keys.ring().jwks()["keys"]}
    with pytest.raises(InvalidJwt):
        minter.verify(token)


def test_tokens_verify_with_the_published_jwks(keys):
    signer = keys.ring().signer("ES256")
    token = jose.sign({"a": 1}, key=signer.private, alg="ES256", kid=signer.kid)
    decoded = jwt.decode(token, KeySet.import_key_set(keys.ring().jwks()), algorithms=["ES256"])
    assert decoded.claims == {"a": 1} and decoded.header["kid"] == signer.kid


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "x" * 9000, "e30.e30.e30", "W10.e30.e30", "!!!.e30.e30"])
def test_malformed_tokens_are_invalid_not_errors(keys, token):
    with pytest.raises(InvalidJwt):
        TokenMinter(keys=keys, issuer="http://localhost").verify(token)


def test_missing_keys_are_created_and_committed_on_first_use(app):
    from sqlalchemy import delete, func, select

    from idp.models import SigningKey

    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        db.execute(delete(SigningKey))
        db.commit()
    registry.key_cache.invalidate()
    with registry.sessionmaker() as db:
        ring = registry.services(db).signing_keys.ring()
        db.rollback()  # whatever the request does, the new keys stay
    with registry.sessionmaker() as db:
        assert db.scalar(select(func.count()).select_from(SigningKey)) == 3
        assert ring.signer("ES256").kid in set(db.scalars(select(SigningKey.kid)))


def test_memory_twin_behaves_like_the_database_store():
    from idp.crypto.kek import Kek
    from idp.keys import MemoryKeyStore

    service = KeyService(store=MemoryKeyStore(), kek=Kek(b"k" * 32), cache=KeyCache(ttl=0), upcoming_seconds=0)
    ring = service.ring()
    assert sorted((k.alg, k.state) for k in ring.keys.values()) == [("ES256", "active"), ("ES256", "next"), ("EdDSA", "active")]
    old = ring.signer("ES256").kid
    service.rotate("ES256")
    service.retire(old)
    assert old not in {k["kid"] for k in service.ring().jwks()["keys"]}
