"""Key rotation as relying parties live it (issue 7, Done when 2): a live provider, the
operator's ``idp keys`` commands (their entry point, run in this process with a registry
and key cache of their own: tests/command.py), and a relying service validating access
tokens locally with idp.rp (its JwksCache honours Cache-Control; its clock is the
test's, so "after max-age" needs no sleeping).

The story: token A is issued; the operator rotates; the new kid is in the JWKS while
tokens are still signed by the old one; the relying party's cache, refreshed after its
max-age, has the new kid before any token carries it; then tokens carry it and the
relying party verifies them without an unknown-kid refetch; token A still verifies and
introspects during the overlap; after ``retire`` it is rejected everywhere.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from idp.db import utcnow
from idp.keys import jose
from idp.keys.service import SIGNING_CHECK_SECONDS
from idp.models import AuditEvent, SigningKey
from idp.rp import InvalidToken, JwksCache, TokenValidator
from tests.fixtures import LiveServer
from tests.functional.oauth.conftest import (
    Browser,
    make_user,
    obtain,
    register,
    start_server,
)
from tests.functional.test_key_cli import cli_env, idp, keys_json

UPCOMING = 3  # seconds a new key is published before it signs (IDP_KEY_UPCOMING_SECONDS)


class RpClock:
    """The relying service's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def live(database_url: str, redis_url: str | None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    overrides = {"key_upcoming_seconds": UPCOMING, **(getattr(request, "param", None) or {})}
    server, stop = start_server(database_url, redis_url, tmp_path, **overrides)
    try:
        yield server
    finally:
        stop()


def service_token(live: LiveServer, svc) -> str:  # type: ignore[no-untyped-def]
    response = httpx.post(live.url + "/token", data={"grant_type": "client_credentials", "scope": "wallet:read"},
                          auth=(svc.client_id, svc.secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def kid_of(token: str) -> str:
    return str(jose.unverified_header(token)["kid"])


def introspect(live: LiveServer, svc, token: str) -> dict:  # type: ignore[no-untyped-def]
    response = httpx.post(live.url + "/introspect", data={"token": token}, auth=(svc.client_id, svc.secret))
    assert response.status_code == 200, response.text
    return dict(response.json())


def published(live: LiveServer) -> set[str]:
    response = httpx.get(live.url + "/jwks.json")
    assert response.status_code == 200
    return {k["kid"] for k in response.json()["keys"]}


def test_rotation_overlap_and_emergency_retire_as_a_relying_party_sees_them(live):
    env = cli_env(live.settings)
    make_user(live)
    web = register(live)
    svc = register(live, grant_types=["client_credentials"], scope="wallet:read")
    # The JWKS is cacheable no longer than a new key waits before it signs.
    assert httpx.get(live.url + "/jwks.json").headers["Cache-Control"] == f"public, max-age={UPCOMING}"

    # The day-one standby has been public since start-up, so `rotate` would promote it at
    # once (test_key_cli); retiring it makes this rotation publish a brand-new key.
    standby = next(k for k, v in keys_json(env).items() if v["role"] == "standby")
    assert idp(env, "keys", "retire", standby).returncode == 0

    rp_clock = RpClock()
    jwks = JwksCache(live.url + "/jwks.json", min_refetch_interval=1.0, clock=rp_clock)
    rp = TokenValidator(issuer=live.url, audience=svc.client_id, jwks=jwks)
    browser = Browser(live)
    user_token = obtain(live, browser, web).token["access_token"]
    token_a = service_token(live, svc)
    old = kid_of(token_a)
    assert kid_of(user_token) == old
    assert rp.validate(token_a, scope="wallet:read")["client_id"] == svc.client_id
    assert jwks.fetches == 1 and old in jwks.kids

    rotated = idp(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.split()[0]
    activates_at = dt.datetime.fromisoformat(rotated.stdout.strip().rsplit(" ", 1)[1])
    assert new != old and new not in jwks.kids

    # Published, not signing.
    assert {old, new} <= published(live)
    assert kid_of(service_token(live, svc)) == old
    # The relying party's cache expires after max-age and learns the new kid...
    rp_clock.now += UPCOMING
    assert rp.validate(token_a)["jti"]
    assert jwks.fetches == 2 and new in jwks.kids
    # ...before any token carries it.
    assert kid_of(service_token(live, svc)) == old
    assert utcnow() < activates_at, "the machine was too slow for this test's upcoming period"

    # The new key signs once its upcoming period is over.
    time.sleep(max(0.0, (activates_at - utcnow()).total_seconds()) + 0.2)
    token_b = service_token(live, svc)
    assert kid_of(token_b) == new
    assert rp.validate(token_b, scope="wallet:read")["client_id"] == svc.client_id
    assert jwks.fetches == 2, "no unknown-kid refetch: the cache already had the key"
    # The overlap: tokens signed by the old key still verify, introspect and reach userinfo.
    assert rp.validate(token_a)["jti"]
    assert introspect(live, svc, token_a)["active"] is True
    info = httpx.get(live.url + "/userinfo", headers={"Authorization": f"Bearer {user_token}"})
    assert info.status_code == 200 and info.json()["email"] == "user@example.com"
    assert old in published(live)

    # Emergency: the old key goes now.
    retired = idp(env, "keys", "retire", old)
    assert retired.returncode == 0 and retired.stdout.strip() == f"{old} is retired"
    assert old not in published(live) and new in published(live)
    assert introspect(live, svc, token_a) == {"active": False}
    info = httpx.get(live.url + "/userinfo", headers={"Authorization": f"Bearer {user_token}"})
    assert info.status_code == 401 and "invalid_token" in info.headers["WWW-Authenticate"]
    assert introspect(live, svc, token_b)["active"] is True
    # The relying party drops it when its cached copy of the JWKS expires.
    rp_clock.now += UPCOMING
    with pytest.raises(InvalidToken, match="unknown kid"):
        rp.validate(token_a)
    assert rp.validate(token_b)["jti"]
    browser.close()


def test_the_superseded_key_retires_itself_once_its_tokens_have_expired(live):
    env = cli_env(live.settings, IDP_KEY_UPCOMING_SECONDS="0")  # the standby may sign at once
    svc = register(live, grant_types=["client_credentials"], scope="wallet:read")
    token_a = service_token(live, svc)
    old = kid_of(token_a)
    rotated = idp(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.split()[0]
    # Signing re-reads the key table at most every SIGNING_CHECK_SECONDS (idp/keys/service.py):
    # a change made elsewhere (this CLI, with its own registry) signs within that time.
    deadline = time.monotonic() + SIGNING_CHECK_SECONDS + 2
    while kid_of(service_token(live, svc)) != new:
        assert time.monotonic() < deadline, "the rotated key never started signing"
        time.sleep(0.2)
    keys = keys_json(env)
    retire_at = dt.datetime.fromisoformat(keys[old]["retire_at"])
    # Published for as long as the longest-lived token it may have signed (3600 s) + leeway.
    stopped = dt.datetime.fromisoformat(keys[new]["activated_at"])
    assert dt.timedelta(seconds=3600) < retire_at - stopped <= dt.timedelta(seconds=3720)
    assert keys[old]["role"] == "verifying" and introspect(live, svc, token_a)["active"] is True

    # An hour later (the test moves the stored moment instead of waiting for it): no
    # scheduler, no operator; the next request sees the key retired and writes it down.
    registry = live.app.extensions["idp"]
    moment = utcnow() - dt.timedelta(seconds=1)
    with registry.sessionmaker() as db:
        db.execute(update(SigningKey).where(SigningKey.kid == old).values(retire_at=moment))
        db.commit()
    assert old not in published(live)
    assert introspect(live, svc, token_a) == {"active": False}
    with registry.sessionmaker() as db:
        row = db.get(SigningKey, old)
        assert row.state == "retired" and row.retired_at == moment
        events = db.scalars(select(AuditEvent).where(AuditEvent.event == "key.retired")).all()
        assert [(e.details["kid"], e.details["reason"]) for e in events] == [(old, "overlap ended")]


@pytest.mark.parametrize("live", [{"key_rotation_days": 1, "key_upcoming_seconds": 120}], indirect=True)
def test_keys_rotate_on_a_schedule(live):
    env = cli_env(live.settings)
    svc = register(live, grant_types=["client_credentials"], scope="wallet:read")
    before = keys_json(env)
    standby = next(k for k, v in before.items() if v["role"] == "standby")
    old_es256 = kid_of(service_token(live, svc))

    # The active keys turn two days old (the test moves their dates); a process that
    # starts now (fresh key cache) finds a rotation due and publishes successors.
    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        for row in db.scalars(select(SigningKey).where(SigningKey.state == "active")):
            row.activated_at -= dt.timedelta(days=2)
            row.created_at -= dt.timedelta(days=2)
        db.commit()
    registry.key_cache.invalidate()
    now_published = published(live)
    assert set(before) < now_published
    keys = keys_json(env)
    roles = sorted((v["alg"], v["role"]) for v in keys.values())
    assert roles == [("ES256", "signing"), ("ES256", "standby"), ("ES256", "upcoming"),
                     ("EdDSA", "signing"), ("EdDSA", "upcoming")]
    assert keys[standby]["role"] == "upcoming"
    with registry.sessionmaker() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.event == "key.rotated")).all()
        assert sorted((e.details["alg"], e.details["reason"]) for e in events) == [
            ("ES256", "schedule"), ("EdDSA", "schedule")]
    # Still the old key until the standby has been published for the upcoming period
    # (when it then signs: test_rotation_overlap_and_emergency_retire_as_a_relying_party_sees_them).
    activates_at = dt.datetime.fromisoformat(keys[standby]["activates_at"])
    assert activates_at == dt.datetime.fromisoformat(keys[standby]["created_at"]) + dt.timedelta(seconds=120)
    assert kid_of(service_token(live, svc)) == old_es256
    # Nothing more is due: asking again changes nothing.
    registry.key_cache.invalidate()
    assert published(live) == now_published and keys_json(env).keys() == keys.keys()
