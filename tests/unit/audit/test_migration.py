"""Upgrading a database whose audit log predates the chain (0003 -> 0004) chains the
records already there, in their order, so that the log verifies and later ones link on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from idp.audit import AuditService
from idp.audit.verify import verify_chain
from idp.db import make_engine, make_sessionmaker
from idp.migrations import upgrade
from idp.models import AuditEvent
from tests.conftest import BACKEND, _create_postgres_database, _drop_postgres_database


@pytest.fixture
def fresh_url(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if BACKEND == "postgresql":
        url, name = _create_postgres_database()
        yield url
        _drop_postgres_database(name)
    else:
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"


def test_upgrade_chains_the_records_already_in_the_log(fresh_url):
    upgrade(fresh_url, "0003")
    engine = make_engine(fresh_url)
    try:
        at = dt.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=dt.UTC)
        with engine.begin() as conn:
            # Gaps, as a database sequence leaves them after rolled-back transactions.
            for seq, event in ((3, "user.created"), (7, "signin.failed"), (8, "signin.succeeded")):
                conn.execute(
                    text("INSERT INTO audit_events (seq, at, event, details) VALUES (:seq, :at, :event, :details)"),
                    {"seq": seq, "at": at + dt.timedelta(seconds=seq), "event": event, "details": '{"n": "ü"}'},
                )
        upgrade(fresh_url)
        sessions = make_sessionmaker(engine)
        with sessions() as db:
            assert [(r.seq, r.event) for r in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))] == [
                (1, "user.created"), (2, "signin.failed"), (3, "signin.succeeded")]
            report = verify_chain(db)
            assert report.finding is None and report.checked == 3
            AuditService(db=db).record("after.upgrade")
            db.commit()
        with sessions() as db:
            report = verify_chain(db)
            assert report.finding is None and (report.checked, report.head_seq) == (4, 4)
    finally:
        engine.dispose()
