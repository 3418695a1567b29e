"""The audit log against the real database (SQLite, and PostgreSQL in the second run):
records round-trip to the same hash, the chain stays linear under concurrent writers, and
verification names what was done to a record edited directly in the database."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select, text, update

from idp.audit.chain import GENESIS, format_at, record_hash
from idp.audit.service import chain_fields
from idp.audit.verify import Anchor, export_lines, head, verify_chain
from idp.context import RequestContext
from idp.db import utcnow
from idp.models import AuditEvent, User

CTX = RequestContext(ip="2001:db8::1", user_agent="Agent/1.0 (ünïcode ✓; \"quoted\")")


@pytest.fixture
def registry(app):
    return app.extensions["idp"]


def write(registry, count: int, *, start: int = 0) -> None:
    with registry.sessionmaker() as db:
        audit = registry.services(db).audit
        for i in range(start, start + count):
            audit.record("test.event", ctx=CTX, user_id=f"user-{i}", n=i)
        db.commit()


def rows(registry) -> list[AuditEvent]:
    with registry.sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def verify(registry, **kwargs):  # type: ignore[no-untyped-def]
    with registry.sessionmaker() as db:
        return verify_chain(db, **kwargs)


def raw(registry, *statements: str) -> None:
    """Tamper as someone with database access would: plain SQL, no service."""
    with registry.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


# ------------------------------------------------------------------ writing
def test_records_round_trip_to_the_hash_they_were_written_with(registry):
    details = {"reason": "bad password", "nested": {"b": [1, 2.5, None, True], "a": "ß"}, "tuple": (1, 2),
               "count": 10**15}
    with registry.sessionmaker() as db:
        written = registry.services(db).audit.record("signin.failed", ctx=CTX, user_id="u1", session_id="s1",
                                                     **details)
        db.commit()
        at = written.at
    [row] = rows(registry)
    assert row.seq == 1 and row.prev_hash == GENESIS and len(row.hash) == 64
    assert format_at(row.at) == format_at(at) and row.at.microsecond == at.microsecond
    assert row.details["tuple"] == [1, 2] and row.user_agent == CTX.user_agent
    assert record_hash(chain_fields(row)) == row.hash


def test_each_record_links_to_the_one_before(registry):
    write(registry, 3)
    write(registry, 2, start=3)
    chain = rows(registry)
    assert [r.seq for r in chain] == [1, 2, 3, 4, 5]
    assert [r.prev_hash for r in chain] == [GENESIS] + [r.hash for r in chain[:-1]]
    report = verify(registry)
    assert report.finding is None and report.checked == 5 and report.head_hash == chain[-1].hash


def test_rolled_back_events_leave_no_gap(registry):
    write(registry, 1)
    with registry.sessionmaker() as db:
        registry.services(db).audit.record("never.happened")
        db.rollback()
        db.commit()  # nothing queued any more
    write(registry, 1, start=1)
    assert [(r.seq, r.event) for r in rows(registry)] == [(1, "test.event"), (2, "test.event")]


def test_a_read_in_the_same_transaction_sees_what_was_recorded(registry):
    with registry.sessionmaker() as db:
        audit = registry.services(db).audit
        audit.record("mfa.failed", user_id="u1")
        assert [e.event for e in audit.for_user("u1")] == ["mfa.failed"]
        audit.record("mfa.failed", user_id="u1")
        db.commit()
    assert verify(registry).checked == 2


def test_the_event_commits_with_the_action_or_not_at_all(registry, make_user):
    user = make_user("audited@example.com")
    with registry.sessionmaker() as db:
        db.get(User, user.id).email = "changed@example.com"
        registry.services(db).audit.record("email.changed", user_id=user.id)
        db.flush()
        db.rollback()
    assert "email.changed" not in [r.event for r in rows(registry)]
    assert verify(registry).finding is None


def test_concurrent_writers_keep_one_linear_chain(registry, make_user):
    """Many sessions on their own connections committing at once (threads, so on
    PostgreSQL the advisory lock and on SQLite the write lock do the serialising)."""
    user = make_user("busy@example.com")
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def worker(i: int) -> None:
        try:
            start.wait()
            for j in range(5):
                with registry.sessionmaker() as db:
                    services = registry.services(db)
                    if j % 2:  # with an action that writes a row every writer touches
                        db.get(User, user.id).password_changed_at = utcnow()
                    # else only events, as a failed sign-in for an unknown address writes
                    services.audit.record("signin.failed", user_id=user.id, worker=i, attempt=j)
                    services.audit.record("protection.checked", worker=i)
                    db.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    chain = rows(registry)
    ours = [r for r in chain if r.event in ("signin.failed", "protection.checked")]
    assert len(ours) == 12 * 5 * 2
    assert [r.seq for r in chain] == list(range(1, len(chain) + 1))
    report = verify(registry)
    assert report.finding is None and report.checked == len(chain)


# ------------------------------------------------------------------ tampering
def test_an_edited_record_is_reported_as_edited(registry):
    write(registry, 5)
    raw(registry, "UPDATE audit_events SET ip = '198.51.100.1' WHERE seq = 3")
    finding = verify(registry).finding
    assert finding is not None and (finding.seq, finding.kind) == (3, "edited")


def test_edited_details_are_reported_as_edited(registry):
    write(registry, 5)
    with registry.engine.begin() as conn:
        conn.execute(update(AuditEvent.__table__).where(AuditEvent.seq == 4).values(details={"n": 99}))
    finding = verify(registry).finding
    assert finding is not None and (finding.seq, finding.kind) == (4, "edited")


def test_a_deleted_record_is_reported_as_deleted(registry):
    write(registry, 5)
    raw(registry, "DELETE FROM audit_events WHERE seq = 2")
    report = verify(registry)
    assert report.finding is not None and (report.finding.seq, report.finding.kind) == (2, "deleted")
    assert report.checked == 1


def test_a_deletion_hidden_by_renumbering_is_reported_as_deleted(registry):
    write(registry, 5)
    raw(registry, "DELETE FROM audit_events WHERE seq = 3", "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = 5")
    finding = verify(registry).finding
    assert finding is not None and (finding.seq, finding.kind) == (3, "deleted")


def test_swapped_records_are_reported_as_reordered(registry):
    write(registry, 5)
    raw(registry, "UPDATE audit_events SET seq = -1 WHERE seq = 2", "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -1")
    finding = verify(registry).finding
    assert finding is not None and (finding.seq, finding.kind) == (2, "reordered")
    assert "now at seq 3" in finding.detail


def test_a_record_rewritten_with_a_recomputed_hash_is_caught_by_the_next_link(registry):
    write(registry, 5)
    [third] = [r for r in rows(registry) if r.seq == 3]
    forged = {**chain_fields(third), "user_id": "someone-else"}
    with registry.engine.begin() as conn:
        conn.execute(update(AuditEvent.__table__).where(AuditEvent.seq == 3)
                     .values(user_id="someone-else", hash=record_hash(forged)))
    finding = verify(registry).finding
    assert finding is not None and (finding.seq, finding.kind) == (3, "edited")


def test_a_log_cut_short_is_caught_only_with_an_anchor(registry):
    write(registry, 5)
    with registry.sessionmaker() as db:
        anchor = head(db)
    assert anchor == Anchor(5, rows(registry)[-1].hash)
    assert verify(registry, anchor=anchor).finding is None
    raw(registry, "DELETE FROM audit_events WHERE seq >= 4")
    assert verify(registry).finding is None  # the chain alone cannot tell
    finding = verify(registry, anchor=anchor).finding
    assert finding is not None and (finding.seq, finding.kind) == (5, "deleted")


def test_verify_from_a_seq_checks_the_link_to_the_record_before(registry):
    write(registry, 6)
    report = verify(registry, from_seq=4)
    assert report.finding is None and (report.checked, report.first_seq, report.head_seq) == (3, 4, 6)
    raw(registry, "UPDATE audit_events SET event = 'x' WHERE seq = 5")
    finding = verify(registry, from_seq=4).finding
    assert finding is not None and (finding.seq, finding.kind) == (5, "edited")
    raw(registry, "DELETE FROM audit_events WHERE seq = 3")
    finding = verify(registry, from_seq=4).finding
    assert finding is not None and (finding.seq, finding.kind) == (3, "deleted")


def test_export_lines_carry_the_hash_and_check_without_this_code(registry):
    import hashlib
    import json

    write(registry, 3)
    with registry.sessionmaker() as db:
        lines = list(export_lines(db))
        later = list(export_lines(db, since=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    assert later == []
    prev = GENESIS
    for line in lines:
        doc = json.loads(line)
        claimed = doc.pop("hash")
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert hashlib.sha256(body).hexdigest() == claimed and doc["prev_hash"] == prev
        prev = claimed


def test_records_from_this_backend_verify_after_loading_into_sqlite(registry, tmp_path):
    """The canonical form does not depend on the database: what PostgreSQL (in that run)
    returns, copied into a fresh SQLite log, verifies there unchanged."""
    import json

    from idp.db import make_engine, make_sessionmaker
    from idp.migrations import upgrade

    with registry.sessionmaker() as db:
        registry.services(db).audit.record("odd.values", ctx=CTX, text="\u2028 \"q\" \\ é 𝄞", float=0.1, big=2**62,
                                           empty={}, nested=[{"b": 1, "a": [None, False]}])
        db.commit()
    write(registry, 2)
    with registry.sessionmaker() as db:
        lines = [json.loads(line) for line in export_lines(db)]
    url = f"sqlite:///{tmp_path / 'copy.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for doc in lines:
                doc["at"] = dt.datetime.fromisoformat(doc["at"])
                conn.execute(AuditEvent.__table__.insert().values(**doc))
        with make_sessionmaker(engine)() as db:
            report = verify_chain(db)
        assert report.finding is None and report.checked == 3
    finally:
        engine.dispose()


WRITER = """
import sys
from idp.audit import AuditService
from idp.db import make_engine, make_sessionmaker
engine = make_engine(sys.argv[1])
sessions = make_sessionmaker(engine)
for i in range(int(sys.argv[2])):
    with sessions() as db:
        AuditService(db=db).record("process.event", worker=sys.argv[3], i=i)
        db.commit()
engine.dispose()
"""


def test_several_processes_writing_at_once_keep_one_linear_chain(registry, database_url):
    """As app instances do in scale-out (PostgreSQL) or a multi-worker embedded run."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", WRITER, database_url, "40", str(n)],
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    chain = rows(registry)
    assert len(chain) == 160 and [r.seq for r in chain] == list(range(1, 161))
    assert len({r.details["worker"] for r in chain}) == 4
    assert verify(registry).finding is None
