"""Attack protection through the real /login, one loopback address per party.

Runs against process memory (SQLite run) and Redis (PostgreSQL run). Named after the
attacks they stop; each also checks the security event and the metric.
"""

from __future__ import annotations

import statistics
import time

from flask import Flask
from flask.testing import FlaskClient

from idp.errors import InvalidCredentials
from idp.protection.counters import FallbackCounters, MemoryCounters
from tests.fixtures import Outbox, get_csrf

from .conftest import PASSWORD, WRONG, attempt, audit_events, client_at, create_user

GENERIC = InvalidCredentials.public_message


def metric(app: Flask, name: str, **labels: str) -> float:
    return app.extensions["idp"].protection.metrics.value(name, **labels)


def recognise(app: Flask, client: FlaskClient, email: str) -> None:
    """Make this browser a recognised device for ``email`` through the mailed link."""
    response = client.post("/login/link", data={"csrf_token": get_csrf(client, "/login/link"), "username": email})
    assert response.status_code == 200
    link = Outbox(app.extensions["idp"].settings.mail_outbox).last_link(email, "/login/link/confirm")
    path = link.removeprefix(app.extensions["idp"].settings.issuer)
    token = path.split("token=", 1)[1]
    response = client.post("/login/link/confirm", data={"csrf_token": get_csrf(client, path), "token": token})
    assert response.status_code == 302 and "device_confirmed=1" in response.headers["Location"]


def signed_in(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 302 and "/login" not in response.headers["Location"]


def test_counters_use_the_storage_the_settings_name(make_app, redis_url):
    app = make_app()
    counters = app.extensions["idp"].protection.counters
    if redis_url is None:
        assert isinstance(counters, MemoryCounters)
    else:
        assert isinstance(counters, FallbackCounters)
        assert counters.primary.client.ping()
        assert counters.primary.prefix.startswith(app.extensions["idp"].settings.redis_prefix + ":")


# ------------------------------------------------------------- ip_user.login
def test_password_guessing_from_one_address_blocks_that_address_for_that_account_only(make_app):
    app = make_app()
    create_user(app, "victim@example.com")
    create_user(app, "other@example.com")
    attacker = client_at(app, "127.0.0.23")
    for _ in range(10):
        assert attempt(attacker, "victim@example.com", WRONG).status_code == 401
    assert len(audit_events(app, "protection.triggered")) == 1
    assert audit_events(app, "protection.triggered")[0].details["rule"] == "ip_user.login"
    assert metric(app, "idp_protection_triggered_total", rule="ip_user.login") == 1

    # The right password from that address is no longer tried, and reads like a wrong one.
    response = attempt(attacker, "victim@example.com", PASSWORD)
    assert response.status_code == 401 and GENERIC in response.get_data(as_text=True)
    assert audit_events(app, "signin.blocked")[-1].details["rule"] == "ip_user.login"
    assert metric(app, "idp_signin_blocked_total", rule="ip_user.login") == 1
    # Only that account: the same address may still sign in to another one...
    assert signed_in(attempt(client_at(app, "127.0.0.23"), "other@example.com", PASSWORD))
    # ...and the owner, from their own address, at the first try.
    assert signed_in(attempt(client_at(app, "127.0.0.24"), "victim@example.com", PASSWORD))
    # The owner's success elsewhere does not lift the attacker's block.
    assert attempt(attacker, "victim@example.com", PASSWORD).status_code == 401


def test_ip_user_block_ends_with_a_password_reset(make_app):
    app = make_app()
    create_user(app, "victim@example.com")
    attacker = client_at(app, "127.0.0.25")
    for _ in range(10):
        attempt(attacker, "victim@example.com", WRONG)
    assert attempt(attacker, "victim@example.com", PASSWORD).status_code == 401
    app.extensions["idp"].protection.attack.account_reset("victim@example.com")  # the reset flow's call
    assert signed_in(attempt(attacker, "victim@example.com", PASSWORD))


def test_ip_user_block_times_out(make_app):
    app = make_app(ip_user_block_seconds=2)
    create_user(app, "victim@example.com")
    attacker = client_at(app, "127.0.0.26")
    for _ in range(10):
        attempt(attacker, "victim@example.com", WRONG)
    assert attempt(attacker, "victim@example.com", PASSWORD).status_code == 401
    time.sleep(2.2)
    assert signed_in(attempt(attacker, "victim@example.com", PASSWORD))


def test_only_consecutive_failures_count_a_success_ends_the_streak(make_app):
    app = make_app()
    create_user(app, "typo@example.com")
    owner = client_at(app, "127.0.0.27")
    for _ in range(9):
        attempt(owner, "typo@example.com", WRONG)
    assert signed_in(attempt(owner, "typo@example.com", PASSWORD))
    for _ in range(9):
        attempt(owner, "typo@example.com", WRONG)
    assert signed_in(attempt(owner, "typo@example.com", PASSWORD))
    assert audit_events(app, "protection.triggered") == []


# ---------------------------------------------------------------- ip.stuffing
def test_credential_stuffing_address_is_throttled_for_every_account(make_app):
    app = make_app(ip_failure_capacity=5)
    create_user(app, "reuser@example.com")
    bot = client_at(app, "127.0.0.30")
    # One try each against many accounts, known or not: the stuffing signature.
    for n in range(5):
        assert attempt(bot, f"leaked{n}@example.com", WRONG).status_code == 401
    events = audit_events(app, "protection.triggered")
    assert [e.details["rule"] for e in events] == ["ip.stuffing"] and events[0].ip == "127.0.0.30"
    assert metric(app, "idp_protection_triggered_total", rule="ip.stuffing") == 1
    # The next leaked pair is right, but that address no longer gets the password tried.
    response = attempt(bot, "reuser@example.com", PASSWORD)
    assert response.status_code == 401 and GENERIC in response.get_data(as_text=True)
    assert metric(app, "idp_signin_blocked_total", rule="ip.stuffing") == 1
    # Other addresses are untouched.
    assert signed_in(attempt(client_at(app, "127.0.0.31"), "reuser@example.com", PASSWORD))


def test_repeated_failures_on_one_account_are_not_the_stuffing_signature(make_app):
    app = make_app(ip_failure_capacity=3)
    create_user(app, "typo@example.com")
    owner = client_at(app, "127.0.0.32")
    for _ in range(5):
        attempt(owner, "typo@example.com", WRONG)
    assert signed_in(attempt(owner, "typo@example.com", PASSWORD))


def test_throttled_address_regains_slowly(make_app):
    app = make_app(ip_failure_capacity=2, ip_failure_regain_seconds=1)
    create_user(app, "reuser@example.com")
    bot = client_at(app, "127.0.0.33")
    attempt(bot, "a@example.com", WRONG)
    attempt(bot, "b@example.com", WRONG)
    assert attempt(bot, "reuser@example.com", PASSWORD).status_code == 401  # a third account: level 3
    time.sleep(1.3)  # one account's worth drained: still more than capacity - 1
    assert attempt(bot, "reuser@example.com", PASSWORD).status_code == 401
    time.sleep(1.0)  # two drained
    assert signed_in(attempt(bot, "reuser@example.com", PASSWORD))


def test_owner_behind_the_attackers_nat_signs_in_from_a_recognised_device(make_app):
    app = make_app(ip_failure_capacity=3)
    create_user(app, "shopper@example.com")
    phone = client_at(app, "127.0.0.34")
    recognise(app, phone, "shopper@example.com")
    bot = client_at(app, "127.0.0.34")  # same carrier NAT address, different device
    for n in range(3):
        attempt(bot, f"leaked{n}@example.com", WRONG)
    assert attempt(bot, "shopper@example.com", PASSWORD).status_code == 401
    assert signed_in(attempt(phone, "shopper@example.com", PASSWORD))


# ------------------------------------------------------------------ user.login
def test_distributed_guessing_suspends_password_only_sign_in_for_that_account(make_app):
    app = make_app(account_failure_limit=12)
    user_id = create_user(app, "target@example.com")
    for n in range(12):  # one failure from each of 12 addresses: no per-address rule fires
        attempt(client_at(app, f"127.0.0.{40 + n}"), "target@example.com", WRONG)
    rules = [e.details["rule"] for e in audit_events(app, "protection.triggered")]
    assert rules == ["user.login"]
    assert audit_events(app, "protection.triggered")[0].user_id == user_id
    assert metric(app, "idp_protection_triggered_total", rule="user.login") == 1

    # The right password from a device that is not recognised: not tried, generic answer.
    fresh = client_at(app, "127.0.0.60")
    response = attempt(fresh, "target@example.com", PASSWORD)
    assert response.status_code == 401 and GENERIC in response.get_data(as_text=True)
    assert "sign-in link" in response.get_data(as_text=True)  # the way out is always on the page
    # The owner proves the mailbox on that device, then the password works.
    recognise(app, fresh, "target@example.com")
    assert signed_in(attempt(fresh, "target@example.com", PASSWORD))


def test_owner_signs_in_at_the_first_try_while_attacked_from_other_addresses(make_app):
    """Done-when 2: the attack's blocks fall on the attacker, never on the owner's device."""
    app = make_app(account_failure_limit=30, ip_failure_capacity=5)
    create_user(app, "owner@example.com")
    laptop = client_at(app, "127.0.0.70")
    recognise(app, laptop, "owner@example.com")
    assert signed_in(attempt(laptop, "owner@example.com", PASSWORD))  # an ordinary day
    # The attack: 3 addresses x 11 wrong passwords, plus stuffing other accounts.
    for ip in ("127.0.0.71", "127.0.0.72", "127.0.0.73"):
        bot = client_at(app, ip)
        for _ in range(11):
            attempt(bot, "owner@example.com", WRONG)
        for n in range(5):
            attempt(bot, f"someone{n}@example.com", WRONG)
    rules = {e.details["rule"] for e in audit_events(app, "protection.triggered")}
    assert rules == {"ip_user.login", "ip.stuffing", "user.login"}
    # The right password from a device the owner never used is refused...
    assert attempt(client_at(app, "127.0.0.74"), "owner@example.com", PASSWORD).status_code == 401
    # ...but the owner's own device goes straight in, at the first try.
    laptop.post("/logout", data={"csrf_token": get_csrf(laptop, "/logout")})
    response = attempt(laptop, "owner@example.com", PASSWORD)
    assert signed_in(response)
    assert laptop.get("/account").status_code == 200


# ------------------------------------------------------------ timing, message
def test_refused_attempts_cost_a_password_verification(make_app):
    # Real-world argon2 cost for this one test, so that the dummy verification shows.
    app = make_app(argon2_time_cost=2, argon2_memory_kib=19 * 1024, ip_user_block_seconds=600)
    create_user(app, "victim@example.com")
    attacker = client_at(app, "127.0.0.80")

    def timed(password: str) -> float:
        token = get_csrf(attacker, "/login")
        # CPU time of this process, not wall time: the suite's two backends run at once
        # and a wall clock here measures the other run's load as much as argon2.
        start = time.process_time()
        response = attacker.post("/login", data={"csrf_token": token, "username": "victim@example.com",
                                                 "password": password})
        assert response.status_code == 401
        return time.process_time() - start

    wrong = [timed(WRONG) for _ in range(10)]  # the 10th trips ip_user.login
    refused = [timed(PASSWORD) for _ in range(5)]
    assert statistics.median(refused) > 0.6 * statistics.median(wrong[:9])


def test_every_instance_sees_the_same_counters_when_redis_is_configured(make_app, redis_url):
    """Scale-out: two instances, one Redis: failures on one block on the other. In the
    embedded mode (one process by design, `idp serve` refuses more workers) they do not."""
    first = make_app()
    second = create_second_instance(first)
    create_user(first, "victim@example.com")
    attacker_a, attacker_b = client_at(first, "127.0.0.140"), client_at(second, "127.0.0.140")
    for n in range(10):
        attempt(attacker_a if n % 2 else attacker_b, "victim@example.com", WRONG)
    refused = attempt(attacker_b, "victim@example.com", PASSWORD).status_code == 401
    second.extensions["idp"].engine.dispose()
    assert refused is (redis_url is not None)


def create_second_instance(app: Flask) -> Flask:
    from idp import create_app

    return create_app(app.extensions["idp"].settings)  # same settings: same prefix, same KEK
