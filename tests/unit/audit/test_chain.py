"""The canonical form that is hashed: fixed, so a record verifies wherever it is read."""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import pytest

from idp.audit.chain import (
    GENESIS,
    canonical,
    format_at,
    normalise_details,
    record_hash,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

FIELDS = {
    "seq": 7,
    "at": dt.datetime(2026, 11, 28, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "event": "signin.failed",
    "user_id": None,
    "session_id": None,
    "ip": "203.0.113.7",
    "user_agent": "Müller's browser",
    "details": {"z": 1, "a": {"y": [1, 2], "b": None}},
    "prev_hash": GENESIS,
}


def test_canonical_form_is_sorted_compact_utf8_with_utc_microseconds():
    expected = (
        '{"at":"2026-11-27T23:02:03.000004Z","details":{"a":{"b":null,"y":[1,2]},"z":1},"event":"signin.failed",'
        '"ip":"203.0.113.7","prev_hash":"' + GENESIS + '","seq":7,"session_id":null,'
        '"user_agent":"Müller\'s browser","user_id":null}'
    ).encode()
    assert canonical(FIELDS) == expected
    assert record_hash(FIELDS) == hashlib.sha256(expected).hexdigest()


def test_every_hashed_field_matters():
    changed = {"seq": 8, "at": FIELDS["at"] + dt.timedelta(microseconds=1), "event": "signin.succeeded",
               "user_id": "u", "session_id": "s", "ip": "203.0.113.8", "user_agent": "x", "details": {},
               "prev_hash": "f" * 64}
    original = record_hash(FIELDS)
    for name, value in changed.items():
        assert record_hash({**FIELDS, name: value}) != original, name


def test_extra_fields_such_as_the_stored_hash_are_not_hashed():
    assert record_hash({**FIELDS, "hash": "anything"}) == record_hash(FIELDS)


def test_details_are_normalised_to_what_the_database_returns():
    assert normalise_details({"t": (1, 2), "n": {3: "x"}}) == {"t": [1, 2], "n": {"3": "x"}}


@pytest.mark.parametrize("value", [math.nan, math.inf, object()])
def test_details_json_cannot_carry_are_refused(value):
    with pytest.raises((ValueError, TypeError)):
        normalise_details({"v": value})


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError):
        format_at(dt.datetime(2026, 1, 1))
