"""The one way security events are written.

Append-only by construction: this service only inserts. Every event goes through
``record`` so that the tamper-evident hash chain is added in one place. Never pass a
password, code, token or secret in ``details``: the log is read by operators.

When the chain is computed, and why there (the design choice of this module):
``record`` only queues the row on its database session; the row is chained and inserted
when that session commits (a ``before_commit`` hook), or earlier if the same transaction
reads the audit table (so a query still sees what was recorded, as autoflush promises).
At that point, in this order:

1. the action's own changes are flushed, so the transaction already holds every row lock
   it will need;
2. the chain lock is taken: ``pg_advisory_xact_lock`` on PostgreSQL; on SQLite a no-op
   write that takes the database's single write lock (pysqlite's implicit BEGIN is
   deferred, so without it the read in 3 could happen outside the write transaction);
3. the last record's ``seq`` and ``hash`` are read, the queued rows numbered and hashed,
   and inserted.

The lock is released by the commit that follows at once. Taking it only after step 1
means a lock holder never waits for a row lock held by a writer that is queued on the
chain lock, so concurrent requests cannot deadlock on it (taking it at the first
autoflush could: two sign-ins of one account, each holding what the other needs). It also
keeps the serialised part of a sign-in or token request to one indexed read, one insert
and the commit. ``seq`` is assigned here (last + 1), not by a database sequence, so the
log has no gaps from rolled-back transactions and a gap means a deleted record.

The PostgreSQL read in 3 relies on READ COMMITTED (the default, which the engine keeps):
each statement sees what the previous lock holder committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, event, select, text
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.session import ORMExecuteState
from sqlalchemy.sql.util import find_tables

from idp.audit.chain import GENESIS, normalise_details, record_hash
from idp.context import RequestContext
from idp.db import utcnow
from idp.models import AuditEvent

_MAX_UA = 512
_PENDING = "idp.audit.pending"
# One application-wide advisory lock key: the first 8 bytes of SHA-256("idp.audit.chain").
CHAIN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"idp.audit.chain").digest()[:8], "big", signed=True)


class AuditService:
    def __init__(self, *, db: Session) -> None:
        self.db = db

    def record(
        self,
        event: str,
        *,
        ctx: RequestContext | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        **details: Any,
    ) -> AuditEvent:
        """Queue an event; it is written, chained, when this session commits."""
        row = AuditEvent(
            at=utcnow(),
            event=event,
            user_id=user_id,
            session_id=session_id,
            ip=ctx.ip if ctx else None,
            user_agent=(ctx.user_agent or "")[:_MAX_UA] or None if ctx else None,
            # Hashed as the database will return it (tuples become lists, keys strings).
            details=normalise_details(details),
        )
        if not self.db.in_transaction():
            self.db.begin()  # what autobegin would do; ties the queue to this transaction
        self.db.info.setdefault(_PENDING, []).append(row)
        return row

    def for_user(self, user_id: str, *, limit: int = 50) -> list[AuditEvent]:
        stmt = (
            select(AuditEvent).where(AuditEvent.user_id == user_id).order_by(AuditEvent.seq.desc()).limit(limit)
        )
        return list(self.db.scalars(stmt))


def chain_fields(row: AuditEvent) -> dict[str, Any]:
    return {
        "seq": row.seq, "at": row.at, "event": row.event, "user_id": row.user_id, "session_id": row.session_id,
        "ip": row.ip, "user_agent": row.user_agent, "details": row.details, "prev_hash": row.prev_hash,
    }


def lock_chain(conn: Connection) -> None:
    """Serialise chain writers until this transaction ends (step 2 above)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.execute(text("UPDATE audit_events SET seq = seq WHERE seq = -1"))
    else:  # pragma: no cover - settings accept only these two
        raise RuntimeError(f"no audit chain lock for {conn.dialect.name}")


def write_pending(db: Session) -> None:
    rows: list[AuditEvent] | None = db.info.pop(_PENDING, None)
    if not rows:
        return
    db.flush()
    conn = db.connection()
    lock_chain(conn)
    last = conn.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, prev = (last.seq, last.hash) if last is not None else (0, GENESIS)
    for row in rows:
        seq += 1
        row.seq, row.prev_hash = seq, prev
        row.hash = prev = record_hash(chain_fields(row))
    db.add_all(rows)
    db.flush()


def _touches_audit_table(statement: Any) -> bool:
    tables: Iterable[Any] = find_tables(statement, check_columns=True, include_crud=True)
    return any(table is AuditEvent.__table__ for table in tables)


@event.listens_for(Session, "before_commit")
def _write_at_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _write_before_audit_reads(state: ORMExecuteState) -> None:
    if state.session.info.get(_PENDING) and _touches_audit_table(state.statement):
        write_pending(state.session)


@event.listens_for(Session, "after_transaction_end")
def _forget_on_rollback(session: Session, transaction: SessionTransaction) -> None:
    # A rolled-back or closed transaction takes its events with it, as it would rows.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
