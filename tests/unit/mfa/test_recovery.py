"""Recovery codes: ten, single use, hashed, regenerating voids the old set (issue 4, Done 6)."""

from __future__ import annotations

import re

from sqlalchemy import select

from idp.models import RecoveryCode


def test_ten_codes_each_usable_once(services, user):
    codes = services.recovery_codes.regenerate(user)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in codes)
    assert services.recovery_codes.use(user, codes[0])
    assert not services.recovery_codes.use(user, codes[0])
    assert services.recovery_codes.use(user, codes[1].upper().replace("-", " "))  # as people type it
    assert services.recovery_codes.remaining(user) == 8


def test_codes_are_stored_only_as_keyed_hashes(services, user):
    codes = services.recovery_codes.regenerate(user)
    stored = list(services.db.scalars(select(RecoveryCode.code_hash)))
    plain = {c.replace("-", "") for c in codes}
    assert len(stored) == 10 and not plain & set(stored)
    assert not any(p in h for p in plain for h in stored)


def test_regenerating_voids_the_old_set(services, user):
    old = services.recovery_codes.regenerate(user)
    new = services.recovery_codes.regenerate(user)
    assert not services.recovery_codes.use(user, old[2])
    assert services.recovery_codes.use(user, new[2])


def test_a_code_works_only_for_its_own_account(services, user, make_user):
    other = services.accounts.get(make_user("other@example.com").id)
    codes = services.recovery_codes.regenerate(user)
    assert not services.recovery_codes.use(other, codes[0])
    assert services.recovery_codes.use(user, codes[0])


def test_malformed_codes_are_refused(services, user):
    services.recovery_codes.regenerate(user)
    for raw in ("", "x" * 5000, "aaaa-bbbb-cccc-dddd\x00", "１１１１-aaaa-bbbb-cccc", "aaaa-bbbb-cccc-ddd1"):
        assert not services.recovery_codes.use(user, raw)
