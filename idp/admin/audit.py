"""Admin API, audit log (scope admin:audit): verify the hash chain (``idp audit verify``)
and read the records (``idp audit export``: the same JSON objects), a page at a time."""

from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy import select

from idp.admin.api import bp
from idp.admin.bearer import Caller, require
from idp.admin.inputs import bad, query_int, query_text
from idp.admin.problems import json_response
from idp.audit.chain import FIELDS, format_at
from idp.models import AuditEvent
from idp.web.requests import services

SCOPE = "admin:audit"
MAX_SEQ = 2**63 - 1
MAX_PAGE = 1000
_COLUMNS = [getattr(AuditEvent, name) for name in FIELDS] + [AuditEvent.hash]


@bp.get("/audit/verify")
@require(SCOPE)
def audit_verify(*, caller: Caller) -> Response:
    from idp.audit.verify import Anchor, verify_chain

    from_seq = query_int("from", default=1, minimum=1, maximum=MAX_SEQ)
    anchor = None
    raw = query_text("anchor", max_length=100)
    if raw is not None:
        seq, _, digest = raw.strip().lower().partition(":")
        if not (seq.isascii() and seq.isdigit() and 0 < len(seq) <= 18 and int(seq) > 0
                and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise bad("anchor must be SEQ:HASH as printed by 'idp audit head' (64 hex digits).")
        anchor = Anchor(int(seq), digest)
    report = verify_chain(services().db, from_seq=from_seq, anchor=anchor)
    finding = report.finding
    return json_response({
        "intact": finding is None,
        "checked": report.checked,
        "first_seq": report.first_seq,
        "head_seq": report.head_seq,
        "head": f"{report.head_seq}:{report.head_hash}" if report.head_hash else None,
        "finding": None if finding is None else {"seq": finding.seq, "kind": finding.kind, "detail": finding.detail},
    })


@bp.get("/audit/events")
@require(SCOPE)
def audit_events(*, caller: Caller) -> Response:
    """Records with seq > ``after``, oldest first, at most ``limit``; ``next_after`` is
    where the next page starts (null when this page reached the end)."""
    after = query_int("after", default=0, minimum=0, maximum=MAX_SEQ)
    limit = query_int("limit", default=100, minimum=1, maximum=MAX_PAGE)
    rows = services().db.execute(
        select(*_COLUMNS).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    events = [_event(row._mapping) for row in rows[:limit]]
    return json_response({"events": events, "next_after": events[-1]["seq"] if more else None})


def _event(fields: Any) -> dict[str, Any]:
    """As one line of ``idp audit export``: the hashed fields plus ``hash``."""
    doc = dict(fields)
    doc["at"] = format_at(doc["at"])
    return doc
