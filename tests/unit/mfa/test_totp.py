"""TOTP: the adapter's parameters and the service's replay rule (issue 4, Done 3)."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest

from idp.mfa import totp_adapter
from idp.mfa.errors import InvalidCode
from idp.mfa.totp import TotpService

T0 = dt.datetime(2026, 11, 27, 12, 0, 10, tzinfo=dt.UTC)


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def code(secret: str, at: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(at)


@pytest.mark.parametrize(
    "raw",
    ["12345", "1234567", "12a456", "١٢٣٤٥٦", "１２３４５６", "12345\u0661", "", "  ", "12\x0034", "+12345", "-12345"],
)
def test_codes_other_than_six_ascii_digits_are_refused_before_any_check(raw):
    assert totp_adapter.normalize_code(raw) is None


def test_spaces_inside_a_code_are_tolerated():
    assert totp_adapter.normalize_code(" 123 456 ") == "123456"


def test_one_step_either_side_is_accepted_two_is_not():
    secret = totp_adapter.new_secret()
    assert len(secret) == 32  # 160 bits
    now = totp_adapter.time_step(T0)
    for offset, accepted in ((-2, False), (-1, True), (0, True), (1, True), (2, False)):
        c = totp_adapter.code_at_step(secret, now + offset)
        matched = totp_adapter.matching_step(secret, c, at=T0, after_step=None)
        assert (matched == now + offset) if accepted else matched is None, offset


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def totp(services, clock) -> TotpService:  # type: ignore[no-untyped-def]
    return TotpService(db=services.db, kek=services.registry.kek, issuer_name="idp", clock=clock)


def enrol(totp, user, clock):  # type: ignore[no-untyped-def]
    pending = totp.begin(user)
    secret = totp.secret(pending)
    totp.confirm(user, pending.id, code(secret, clock.at), name="phone")
    totp.db.commit()
    return pending, secret


def test_enrolment_needs_a_correct_code_and_the_secret_is_encrypted_at_rest(totp, user, clock):
    pending = totp.begin(user)
    secret = totp.secret(pending)
    assert secret.encode() not in pending.secret_encrypted
    with pytest.raises(InvalidCode):
        totp.confirm(user, pending.id, "000000" if code(secret, clock.at) != "000000" else "111111", name="x")
    assert totp.confirmed(user) == []
    totp.confirm(user, pending.id, code(secret, clock.at), name="phone")
    assert [a.name for a in totp.confirmed(user)] == ["phone"]
    assert "secret=" + secret in totp.provisioning_uri(pending, account=user.email)


def test_secret_ciphertext_is_bound_to_its_row(totp, user, services):  # type: ignore[no-untyped-def]
    from idp.crypto.kek import KekError

    first, second = totp.begin(user), None
    first_blob = first.secret_encrypted
    second = totp.begin(user)  # drops the first pending row
    second.secret_encrypted = first_blob  # moved between rows: must not decrypt
    with pytest.raises(KekError):
        totp.secret(second)


def test_enrolment_expires(totp, user, clock):
    pending = totp.begin(user)
    secret = totp.secret(pending)
    clock.at += dt.timedelta(minutes=16)
    with pytest.raises(InvalidCode):
        totp.confirm(user, pending.id, code(secret, clock.at), name="x")


def test_sign_in_code_works_once(totp, user, clock):
    _pending, secret = enrol(totp, user, clock)
    clock.at += dt.timedelta(seconds=30)
    c = code(secret, clock.at)
    totp.verify(user, c)
    with pytest.raises(InvalidCode):
        totp.verify(user, c)  # replay of the same code (same time step)


def test_the_enrolment_code_cannot_be_replayed_at_sign_in(totp, user, clock):
    _pending, secret = enrol(totp, user, clock)
    with pytest.raises(InvalidCode):
        totp.verify(user, code(secret, clock.at))


def test_an_older_code_after_a_newer_one_is_refused(totp, user, clock):
    _pending, secret = enrol(totp, user, clock)
    clock.at += dt.timedelta(minutes=5)
    newer = code(secret, clock.at)
    older = code(secret, clock.at - dt.timedelta(seconds=30))
    totp.verify(user, newer)
    with pytest.raises(InvalidCode):
        totp.verify(user, older)  # still in the ±1 window, but a step already passed


def test_code_from_two_steps_ago_is_refused(totp, user, clock):
    _pending, secret = enrol(totp, user, clock)
    clock.at += dt.timedelta(minutes=5)
    with pytest.raises(InvalidCode):
        totp.verify(user, code(secret, clock.at - dt.timedelta(seconds=60)))
    totp.verify(user, code(secret, clock.at - dt.timedelta(seconds=30)))  # one step: clock drift


def test_another_users_code_does_not_work(totp, user, clock, services, make_user):  # type: ignore[no-untyped-def]
    _pending, secret = enrol(totp, user, clock)
    other = services.accounts.get(make_user("other@example.com").id)
    clock.at += dt.timedelta(seconds=30)
    with pytest.raises(InvalidCode):
        totp.verify(other, code(secret, clock.at))
