"""Checking the chain, and exporting it, as ``idp audit verify`` and ``export`` do.

Both stream the log in ``seq`` order with ``yield_per`` (a server-side cursor on
PostgreSQL), so memory stays bounded however long the log is.

What verification can tell, and what it cannot: an edited record breaks its own hash; a
deleted one leaves a gap in ``seq`` or, if the later records were renumbered, a link
(``prev_hash``) to a record that no longer exists; a moved one sits where another record's
link says something else belongs. Someone able to rewrite the database could recompute
every hash from the point they changed, and could drop records from the end: only a head
hash kept outside the database (``idp audit head``; ``verify --anchor``) catches that.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from idp.audit.chain import FIELDS, GENESIS, format_at, record_hash
from idp.models import AuditEvent

_COLUMNS = [getattr(AuditEvent, name) for name in FIELDS] + [AuditEvent.hash]
_BATCH = 1000

Kind = Literal["edited", "deleted", "reordered"]


@dataclass(frozen=True)
class Finding:
    seq: int
    kind: Kind
    detail: str


@dataclass(frozen=True)
class Report:
    checked: int
    first_seq: int | None
    head_seq: int | None
    head_hash: str | None
    finding: Finding | None


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str


def verify_chain(db: Session, *, from_seq: int = 1, anchor: Anchor | None = None) -> Report:
    expected, prev = from_seq, GENESIS
    if from_seq > 1:
        before = db.scalar(select(AuditEvent.hash).where(AuditEvent.seq == from_seq - 1))
        if before is None:
            return Report(0, None, None, None, Finding(from_seq - 1, "deleted", "the record before --from is missing"))
        prev = before
    checked, first, broken = 0, None, None
    result = db.execute(select(*_COLUMNS).where(AuditEvent.seq >= from_seq).order_by(AuditEvent.seq),
                        execution_options={"yield_per": _BATCH})
    try:
        for row in result:
            if row.seq != expected or row.prev_hash != prev or record_hash(row._mapping) != row.hash:
                broken = row
                break
            checked, first = checked + 1, first if first is not None else row.seq
            expected, prev = expected + 1, row.hash
    finally:
        result.close()
    head_seq = expected - 1 if checked else None
    head_hash = prev if checked else None
    if broken is not None:
        return Report(checked, first, head_seq, head_hash, _diagnose(db, broken, expected, prev, start=from_seq))
    if anchor is not None:
        return Report(checked, first, head_seq, head_hash, _check_anchor(db, anchor))
    return Report(checked, first, head_seq, head_hash, None)


def _diagnose(db: Session, row: Row[Any], expected: int, prev: str, *, start: int) -> Finding:
    """Name the kind of the first break at position ``expected`` (linked to ``prev``)."""
    # The record that was written at this position links to `prev`. Found elsewhere,
    # intact as written for this position, it was moved. (A one-off scan, on failure only.)
    written_here = db.execute(
        select(*_COLUMNS).where(AuditEvent.prev_hash == prev, AuditEvent.seq != row.seq).limit(1)
    ).first()
    if written_here is not None and record_hash({**written_here._mapping, "seq": expected}) == written_here.hash:
        return Finding(expected, "reordered", f"the record written as seq {expected} is now at seq {written_here.seq}")
    if row.seq != expected:
        missing = f"seq {expected}" if row.seq == expected + 1 else f"seq {expected}..{row.seq - 1}"
        return Finding(expected, "deleted", f"{missing} missing (gap in seq)")
    if record_hash(row._mapping) != row.hash:
        if row.prev_hash != prev and db.scalar(select(AuditEvent.seq).where(AuditEvent.hash == row.prev_hash)) is None:
            return Finding(expected, "deleted", "it links to a record that no longer exists (later records renumbered)")
        return Finding(expected, "edited", "hash mismatch: the record's content differs from what was hashed")
    if expected == start:
        return Finding(expected, "edited", "its link does not match the start of the chain")
    return Finding(expected - 1, "edited",
                   f"the record was rewritten with a recomputed hash (seq {expected} links to the original)")


def _check_anchor(db: Session, anchor: Anchor) -> Finding | None:
    found = db.scalar(select(AuditEvent.hash).where(AuditEvent.seq == anchor.seq))
    if found is None:
        return Finding(anchor.seq, "deleted", "the anchored record is gone (the log was cut short)")
    if found != anchor.hash:
        return Finding(anchor.seq, "edited", "the anchored record's hash changed (the chain was rewritten)")
    return None


def head(db: Session) -> Anchor | None:
    row = db.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return Anchor(row.seq, row.hash) if row is not None else None


def export_lines(db: Session, *, since: dt.datetime | None = None) -> Iterator[str]:
    """JSON lines in seq order: the canonical fields plus ``hash``. A reader can check a
    line without this code: SHA-256 over the line without ``hash``, keys sorted, no
    whitespace, UTF-8, equals ``hash``; each ``prev_hash`` is the previous line's
    ``hash`` (when exporting from the start)."""
    stmt = select(*_COLUMNS).order_by(AuditEvent.seq)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    result = db.execute(stmt, execution_options={"yield_per": _BATCH})
    try:
        for row in result:
            doc = dict(row._mapping)
            doc["at"] = format_at(doc["at"])
            yield json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    finally:
        result.close()
