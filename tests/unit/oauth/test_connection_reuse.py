"""The token endpoint's database connections (idp/db.py): no ping per request, but a
pooled connection that the server dropped while it sat idle is replaced before use."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

import idp.db


def test_a_connection_dropped_while_idle_is_replaced_before_the_request_sees_it(app, monkeypatch):
    engine = app.extensions["idp"].engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite connections are files, not sockets: they cannot be dropped")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    # A server restart, a proxy's idle timeout: every pooled connection of ours is gone.
    killer = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    with killer.connect() as conn:
        killed = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )).scalar()
    killer.dispose()
    assert killed >= 1
    monkeypatch.setattr(idp.db, "PING_AFTER_IDLE_SECONDS", 0.0)  # "idle long enough" now
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
