"""The argon2 adapter: argon2id, our parameters, upgrade when they change."""

from __future__ import annotations

import argon2
import pytest

from idp.accounts.hashing import PasswordHasher

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def cheap(**overrides: int) -> PasswordHasher:
    values = {"time_cost": 1, "memory_kib": 8, "parallelism": 1} | overrides
    return PasswordHasher(**values)


def test_hashes_are_argon2id_with_the_configured_parameters():
    stored = cheap(time_cost=2, memory_kib=16).hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=16,t=2,p=1$")


def test_salted_each_time():
    hasher = cheap()
    assert hasher.hash("same password here") != hasher.hash("same password here")


def test_verify_accepts_only_the_right_password():
    hasher = cheap()
    stored = hasher.hash("correct horse battery staple")
    assert hasher.verify(stored, "correct horse battery staple") is True
    assert hasher.verify(stored, "correct horse battery stapl") is False


def test_no_stored_hash_never_verifies_even_against_the_dummy_password():
    hasher = cheap()
    assert hasher.verify(None, "dummy password for timing equalisation") is False
    assert hasher.verify(None, "anything") is False


def test_malformed_stored_hash_is_a_mismatch_not_a_crash():
    hasher = cheap()
    assert hasher.verify("$argon2id$garbage", "x") is False
    assert hasher.verify("plaintext-password", "plaintext-password") is False


def test_unknown_account_still_costs_one_real_argon2_verification(monkeypatch):
    calls: list[str] = []
    original = argon2.PasswordHasher.verify

    def counting(self, hash, password):  # type: ignore[no-untyped-def]
        calls.append(hash if isinstance(hash, str) else hash.decode())
        return original(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    hasher = cheap(time_cost=2, memory_kib=16)
    hasher.verify_dummy("guess")
    assert len(calls) == 1
    # The dummy hash has the very parameters real hashes have: same work, same time.
    assert calls[0].startswith("$argon2id$v=19$m=16,t=2,p=1$")


def test_needs_rehash_when_parameters_change():
    old = cheap().hash("correct horse battery staple")
    assert cheap().needs_rehash(old) is False
    assert cheap(memory_kib=16).needs_rehash(old) is True
    assert cheap(time_cost=2).needs_rehash(old) is True
    assert cheap().needs_rehash("not a hash") is True


def test_argon2i_and_argon2d_hashes_are_upgraded_to_argon2id():
    legacy = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I).hash("pw")
    hasher = cheap()
    assert hasher.verify(legacy, "pw") is True
    assert hasher.needs_rehash(legacy) is True
