"""The tamper-evident hash chain over the audit log: one canonical form, one hash.

Each record's ``hash`` is SHA-256 over the canonical serialisation of its fields and
the previous record's hash (``prev_hash``); the first record links to ``GENESIS``.
Editing a record breaks its own hash; deleting or moving one breaks the next link.

Canonical form (version 1; change it only by adding a version 2 beside it): a JSON object
of exactly the fields in ``FIELDS``, keys sorted at every level, no whitespace, UTF-8
(not ASCII-escaped), no NaN/Infinity, ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.
Both databases return the same values for these fields (microsecond timestamps;
``details`` is normalised through JSON before it is stored, so what is hashed is what
comes back), so a record written on one backend verifies from a dump on the other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "at", "event", "user_id", "session_id", "ip", "user_agent", "details", "prev_hash")
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_at(at: dt.datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(dt.UTC).strftime(_AT_FORMAT)


def normalise_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """What the database will give back: JSON types only (tuples become lists, keys
    strings). Raises ValueError/TypeError for values JSON cannot carry faithfully."""
    return json.loads(_dumps(dict(details)))  # type: ignore[no-any-return]


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: ``fields`` holds every name in FIELDS."""
    doc = {name: fields[name] for name in FIELDS}
    doc["at"] = format_at(doc["at"]) if isinstance(doc["at"], dt.datetime) else doc["at"]
    return _dumps(doc).encode("utf-8")


def record_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
