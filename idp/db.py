"""Database engine, sessions and the shared column types (SQLAlchemy 2, typed)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Annotated

from sqlalchemy import DateTime, Engine, String, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def random_id() -> str:
    """Public identifiers (user ``sub``, session handles): 128 random bits, never row numbers."""
    return secrets.token_urlsafe(16)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC everywhere: SQLite drops the zone, PostgreSQL keeps it."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# Shared annotated column types (Warehouse's utils/db/types.py habit).
PublicId = Annotated[str, mapped_column(String(32), primary_key=True, default=random_id)]
Timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]
OptionalTimestamp = Annotated[dt.datetime | None, mapped_column(UTCDateTime(), nullable=True)]
Sha256Hex = Annotated[str, mapped_column(String(64), unique=True)]


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain postgresql:// would look for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(parsed, pool_size=10, max_overflow=20, pool_recycle=RECYCLE_SECONDS)
    _ping_when_idle(engine)
    return engine


# A pooled connection is replaced after this long, below any server or proxy idle timeout.
RECYCLE_SECONDS = 1800
# ...and pinged before use only when it has sat unused this long.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping`` costs one round trip on every checkout, i.e. on every
    request (issue 3: a sixth of a refresh's round trips). A connection that was in use a
    moment ago is almost always still good, so only one that sat idle is pinged; a dead
    one is then replaced before the request sees it. A connection that dies while busy
    (a database restart) fails one statement, and SQLAlchemy then discards every pooled
    connection older than the failure, as it would have anyway."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure means: not this connection
            # The pool retries the checkout with a fresh connection.
            raise exc.DisconnectionError(str(error)) from error


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
