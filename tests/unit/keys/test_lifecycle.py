"""The signing-key lifecycle with a clock the test moves (no sleeping): rotation with an
upcoming period, the overlap, automatic retirement, the emergency retire, the schedule,
and several processes (each with its own cache and transaction) acting at once."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import delete, func, select, text

from idp.audit import AuditService
from idp.crypto.kek import Kek
from idp.db import utcnow
from idp.keys import KeyCache, KeyService, MemoryKeyStore, SigningKeyError, SqlKeyStore
from idp.keys import jose
from idp.keys.jose import InvalidJwt
from idp.keys.service import ensure_keys_at_start
from idp.models import AuditEvent, SigningKey
from idp.oauth.tokens import TokenMinter

UPCOMING = 600
TOKEN_SECONDS = 3600
LEEWAY = 60
OVERLAP = dt.timedelta(seconds=TOKEN_SECONDS + LEEWAY)


class Clock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def memory_service(clock: Clock, **kwargs) -> KeyService:  # type: ignore[no-untyped-def]
    kwargs.setdefault("upcoming_seconds", UPCOMING)
    return KeyService(store=MemoryKeyStore(), kek=Kek(b"k" * 32), cache=KeyCache(), clock=clock,
                      token_seconds=TOKEN_SECONDS, leeway_seconds=LEEWAY, **kwargs)


def sql_service(app, db, clock: Clock, cache: KeyCache | None = None, **kwargs) -> KeyService:  # type: ignore[no-untyped-def]
    """What Services.signing_keys builds for one request, with the test's clock."""
    registry = app.extensions["idp"]
    kwargs.setdefault("upcoming_seconds", UPCOMING)
    return KeyService(store=SqlKeyStore(db), kek=registry.kek, cache=cache or KeyCache(),
                      sessionmaker=registry.sessionmaker, audit=AuditService(db=db), clock=clock,
                      token_seconds=TOKEN_SECONDS, leeway_seconds=LEEWAY, **kwargs)


def kids(ring) -> set[str]:  # type: ignore[no-untyped-def]
    return {k["kid"] for k in ring.jwks()["keys"]}


def token_by(key, *, exp: int = 4_000_000_000) -> str:  # type: ignore[no-untyped-def]
    return jose.sign({"iss": "http://localhost", "iat": int(time.time()), "exp": exp}, key=key.private,
                     alg=key.alg, kid=key.kid, typ="at+jwt")


# ------------------------------------------------------------------ rotation in time
def test_rotated_key_is_published_for_the_upcoming_period_before_it_signs():
    clock = Clock()
    keys = memory_service(clock)
    old = keys.ring().signer("EdDSA")  # day one has no EdDSA standby: rotate makes a new key
    new = keys.rotate("EdDSA")
    assert new.activates_at == clock.now + dt.timedelta(seconds=UPCOMING)
    assert new.kid in kids(keys.ring())
    clock.advance(UPCOMING - 1)
    assert keys.ring().signer("EdDSA").kid == old.kid
    clock.advance(1)
    ring = keys.ring()
    assert ring.signer("EdDSA").kid == new.kid
    assert ring.verifier(old.kid) is not None, "the old key verifies during the overlap"


def test_the_superseded_key_retires_itself_when_its_last_token_has_expired():
    clock = Clock()
    keys = memory_service(clock)
    old = keys.ring().signer("EdDSA")
    new = keys.rotate("EdDSA")
    activates = new.activates_at
    assert keys.store.get(old.kid).retire_at == activates + OVERLAP
    clock.now = activates + OVERLAP - dt.timedelta(seconds=1)
    assert old.kid in kids(keys.ring())
    clock.advance(1)
    assert old.kid not in kids(keys.ring())
    # The stored states follow (ring() persisted them): nothing needs a scheduler.
    assert keys.store.get(old.kid).state == "retired" and keys.store.get(old.kid).retired_at == activates + OVERLAP
    assert keys.store.get(new.kid).state == "active" and keys.store.get(new.kid).activated_at == activates


def test_a_standby_signs_only_once_published_for_the_upcoming_period():
    clock = Clock()
    keys = memory_service(clock)
    standby = next(k for k in keys.ring().keys.values() if k.state == "next")
    created = keys.store.get(standby.kid).created_at
    clock.advance(UPCOMING / 2)
    promoted = keys.rotate("ES256")
    assert promoted.kid == standby.kid
    assert promoted.activates_at == created + dt.timedelta(seconds=UPCOMING), "never sooner"
    # A new standby replaces it (published from now, for the rotation after this one).
    standbys = [r for r in keys.list() if r.state == "next" and r.activates_at is None]
    assert len(standbys) == 1 and standbys[0].kid != standby.kid


def test_a_standby_published_long_ago_signs_at_once():
    clock = Clock()
    keys = memory_service(clock)
    old = keys.ring().signer("ES256")
    clock.advance(UPCOMING + 1)
    promoted = keys.rotate("ES256")
    assert promoted.state == "active" and keys.ring().signer("ES256").kid == promoted.kid
    # Emergency: the suspect key can now go at once.
    keys.retire(old.kid)
    assert old.kid not in kids(keys.ring())


def test_rotating_again_while_a_rotation_is_pending_is_refused():
    keys = memory_service(Clock())
    pending = keys.rotate("EdDSA")
    with pytest.raises(SigningKeyError, match=f"already pending: {pending.kid} signs from .*retire it first"):
        keys.rotate("EdDSA")


def test_unknown_algorithm_is_refused():
    with pytest.raises(SigningKeyError, match="unsupported algorithm"):
        memory_service(Clock()).rotate("HS256")


# ------------------------------------------------------------------ emergency retire
def test_retiring_the_pending_successor_keeps_the_current_key_signing():
    clock = Clock()
    keys = memory_service(clock)
    old = keys.ring().signer("EdDSA")
    new = keys.rotate("EdDSA")
    keys.retire(new.kid)
    assert new.kid not in kids(keys.ring())
    assert keys.store.get(old.kid).retire_at is None
    clock.advance(UPCOMING + TOKEN_SECONDS + LEEWAY + 10)
    assert keys.ring().signer("EdDSA").kid == old.kid


def test_retiring_a_compromised_successor_gives_the_previous_key_its_job_back():
    clock = Clock()
    keys = memory_service(clock)
    old = keys.ring().signer("EdDSA")
    new = keys.rotate("EdDSA")
    clock.advance(UPCOMING + 5)
    assert keys.ring().signer("EdDSA").kid == new.kid
    keys.retire(new.kid)
    assert keys.ring().signer("EdDSA").kid == old.kid
    clock.advance(TOKEN_SECONDS + LEEWAY)  # past the retire_at it had while superseded
    assert keys.ring().signer("EdDSA").kid == old.kid


def test_the_only_active_key_cannot_be_retired_even_with_a_successor_on_the_way():
    keys = memory_service(Clock())
    old = keys.ring().signer("EdDSA")
    new = keys.rotate("EdDSA")
    with pytest.raises(SigningKeyError, match=f"only active EdDSA key; rotate first; {new.kid} signs from"):
        keys.retire(old.kid)
    assert old.kid in kids(keys.ring())


@pytest.mark.parametrize("kid", ["nope", "", "x" * 5000, "es256-\x1b[31m", "\u202e"])
def test_retiring_an_unknown_key_is_an_error(kid):
    keys = memory_service(Clock())
    with pytest.raises(SigningKeyError, match="no signing key") as raised:
        keys.retire(kid)
    assert len(str(raised.value)) < 100


# ------------------------------------------------------------------ schedule
def test_the_schedule_publishes_a_successor_when_the_key_is_old_enough():
    clock = Clock()
    keys = memory_service(clock, rotation_days=30)
    es256, eddsa = keys.ring().signer("ES256"), keys.ring().signer("EdDSA")
    standby = next(k for k in keys.ring().keys.values() if k.state == "next")
    clock.advance(30 * 86400 - 1)
    assert not any(r.activates_at for r in keys.list())
    clock.advance(1)
    ring = keys.ring()
    # ES256: the standby has been published for 30 days, so it signs at once.
    assert ring.signer("ES256").kid == standby.kid and ring.verifier(es256.kid) is not None
    # EdDSA has no standby: a successor is published now and signs after the upcoming period.
    upcoming = [r for r in keys.list() if r.state == "next" and r.activates_at is not None]
    assert [r.alg for r in upcoming] == ["EdDSA"] and upcoming[0].kid in kids(ring)
    assert ring.signer("EdDSA").kid == eddsa.kid
    # Nothing more while it is pending, nor until 30 days after it activated.
    clock.advance(UPCOMING)
    assert keys.ring().signer("EdDSA").kid == upcoming[0].kid
    clock.advance(29 * 86400)
    keys.ring()
    assert sum(1 for r in keys.list() if r.activates_at is not None) == 2
    clock.advance(86400)
    keys.ring()
    assert sum(1 for r in keys.list() if r.activates_at is not None) == 4


def test_no_schedule_no_rotation():
    clock = Clock()
    keys = memory_service(clock)
    clock.advance(3650 * 86400)
    keys.ring()
    assert not any(r.activates_at for r in keys.list())


# ------------------------------------------------------------------ database, several processes
def test_due_transitions_are_committed_by_ring_in_their_own_transaction(app):
    registry = app.extensions["idp"]
    clock = Clock()
    with registry.sessionmaker() as db:
        keys = sql_service(app, db, clock)
        old = keys.ring().signer("EdDSA")
        new = keys.rotate("EdDSA")
        db.commit()
    clock.advance(UPCOMING + 1)
    with registry.sessionmaker() as db:
        ring = sql_service(app, db, clock).ring()
        db.rollback()  # whatever the request does with its own transaction
    assert ring.signer("EdDSA").kid == new.kid
    clock.advance(TOKEN_SECONDS + LEEWAY)
    with registry.sessionmaker() as db:
        assert old.kid not in kids(sql_service(app, db, clock).ring())
        db.rollback()
    with registry.sessionmaker() as db:
        states = dict(db.execute(select(SigningKey.kid, SigningKey.state)).all())
        events = [(e.event, e.details.get("kid")) for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert states[new.kid] == "active" and states[old.kid] == "retired"
    assert ("key.rotated", new.kid) in events and ("key.activated", new.kid) in events
    assert ("key.retired", old.kid) in events


def test_a_retire_by_another_process_is_seen_by_the_next_request_not_seconds_later(app):
    registry = app.extensions["idp"]
    cache = KeyCache()  # this process's cache, warm and well within its lifetime
    clock = Clock(utcnow() + dt.timedelta(seconds=UPCOMING + 1))  # the standby may sign at once
    with registry.sessionmaker() as db:
        keys = sql_service(app, db, clock, cache)
        old = keys.ring().signer("ES256")
        token = token_by(old)
        assert TokenMinter(keys=keys, issuer="http://localhost").verify(token)
    with registry.sessionmaker() as db:  # the operator's CLI: another process, its own cache
        cli = sql_service(app, db, clock)
        cli.rotate("ES256")
        cli.retire(old.kid)
        db.commit()
    with registry.sessionmaker() as db:  # the next request here, 0 s later
        keys = sql_service(app, db, clock, cache)
        with pytest.raises(InvalidJwt, match="retired"):
            TokenMinter(keys=keys, issuer="http://localhost").verify(token)
        assert old.kid not in kids(keys.ring())


def test_two_processes_due_for_a_scheduled_rotation_make_one_key(app):
    registry = app.extensions["idp"]
    clock = Clock(utcnow() + dt.timedelta(days=31))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with registry.sessionmaker() as db:
                keys = sql_service(app, db, clock, rotation_days=30)  # each its own cache
                barrier.wait()
                keys.ring()
                db.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    # A worker that found the lock taken retries a moment later; let one more look.
    with registry.sessionmaker() as db:
        sql_service(app, db, clock, rotation_days=30).ring()
        db.commit()
    with registry.sessionmaker() as db:
        rotated = db.scalars(select(SigningKey.alg).where(SigningKey.activates_at.is_not(None))).all()
        total = db.scalar(select(func.count()).select_from(SigningKey))
    # One rotation per algorithm (ES256 promoted its standby and made a new one): 3 + 2 keys.
    assert sorted(rotated) == ["ES256", "EdDSA"] and total == 5


def test_two_workers_starting_on_an_empty_database_make_one_set_of_keys(app):
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        db.execute(delete(SigningKey))
        db.commit()
    barrier = threading.Barrier(3)

    def worker() -> None:
        barrier.wait()
        ensure_keys_at_start(registry.sessionmaker, registry.kek, KeyCache())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with registry.sessionmaker() as db:
        assert db.scalar(select(func.count()).select_from(SigningKey)) == 3


def test_a_due_transition_never_waits_for_the_requests_own_write_lock(app):
    """SQLite has one writer: a request that has written and then signs must not wait
    for itself. It gets the right ring at once; the states are written later."""
    registry = app.extensions["idp"]
    clock = Clock()
    with registry.sessionmaker() as db:
        keys = sql_service(app, db, clock)
        new = keys.rotate("EdDSA")
        db.commit()
    clock.advance(UPCOMING + 1)
    with registry.sessionmaker() as db:
        db.execute(text("UPDATE signing_keys SET alg = alg WHERE kid = 'none'"))  # this request has written
        started = time.monotonic()
        ring = sql_service(app, db, clock).ring()
        assert time.monotonic() - started < 5
        assert ring.signer("EdDSA").kid == new.kid
        db.commit()
    with registry.sessionmaker() as db:
        sql_service(app, db, clock).ring()
        db.rollback()
    with registry.sessionmaker() as db:
        assert db.get(SigningKey, new.kid).state == "active"
