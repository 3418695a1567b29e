from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, Timestamp


class AuditEvent(Base):
    """One security event. Append-only: the service never updates or deletes a row.

    `seq` orders the log without gaps; ``hash`` is SHA-256 over this record's fields and
    ``prev_hash`` (the previous record's ``hash``), see idp/audit/chain.py. Both are set by
    the audit service when the transaction commits, under the chain lock.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[Timestamp]
    # Dotted lower-case name: signin.failed, session.ended, ...
    event: Mapped[str] = mapped_column(String(64), index=True)
    # No foreign key: the log outlives the account it mentions.
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The hash chain: 64 lower-case hex digits each. Not indexed: verification walks by
    # seq, and every index costs the sign-in and token endpoints an extra write.
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
