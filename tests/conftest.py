"""Test set-up shared by every folder.

The suite runs twice (``make test``): against SQLite, and against PostgreSQL + Redis
(``IDP_TEST_DATABASE=postgresql``). In the second run a missing PostgreSQL or Redis is a
failure of the whole session, never a silent skip. Each run creates its own database
(and its own Redis key prefix), so concurrent runs on one machine do not collide.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flask import Flask
from flask.testing import FlaskClient

from idp.db import Base
from idp.settings import Settings


class ClosingClient(FlaskClient):
    """Flask's test client, closing each response the way a WSGI server does once the
    answer has been sent: mail queued by a request leaves then (idp/web/requests.py), so
    a test reads the outbox right after the request, as a person would a moment later."""

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


Flask.test_client_class = ClosingClient

BACKEND = os.environ.get("IDP_TEST_DATABASE", "sqlite")
POSTGRES_URL = os.environ.get("IDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytest_plugins = ["tests.fixtures"]


def pytest_report_header(config: pytest.Config) -> str:
    return f"idp backend: {BACKEND}" + (f" ({POSTGRES_URL}, {REDIS_URL})" if BACKEND == "postgresql" else "")


def _create_postgres_database() -> tuple[str, str]:
    admin_url = make_url(POSTGRES_URL)
    name = f"idp_test_{os.getpid()}_{secrets.token_hex(3)}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure here must stop the run loudly
        pytest.exit(f"PostgreSQL is required for this run but unusable at {POSTGRES_URL}: {error}", returncode=3)
    finally:
        engine.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False), name


def _drop_postgres_database(name: str) -> None:
    engine = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _check_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as error:  # noqa: BLE001
        pytest.exit(f"Redis is required for this run but unreachable at {REDIS_URL}: {error}", returncode=3)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from idp.migrations import upgrade

    if BACKEND == "postgresql":
        url, name = _create_postgres_database()
        _check_redis()
        upgrade(url)
        yield url
        _drop_postgres_database(name)
    elif BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("db") / "idp.sqlite3"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
    else:
        pytest.exit(f"IDP_TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}", returncode=3)


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """Redis in the PostgreSQL run (the scale-out shape), in-process memory otherwise."""
    return REDIS_URL if BACKEND == "postgresql" else None


@pytest.fixture
def settings(database_url: str, redis_url: str | None, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Overrides by indirect parametrization, like ``live_server``, or for a whole module of
    password-only tests by marker: ``pytestmark = pytest.mark.mfa_policy("optional")``."""
    overrides = dict(getattr(request, "param", None) or {})
    if (marker := request.node.get_closest_marker("mfa_policy")) is not None:
        overrides.setdefault("mfa_policy", marker.args[0])
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, **overrides)


def make_settings(*, database_url: str, redis_url: str | None, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "testing",
        "issuer": "http://localhost",
        "database_url": database_url,
        "redis_url": redis_url,
        "keys_dir": tmp_path / "keys",
        "mail_outbox": tmp_path / "outbox",
        # Cheap argon2 in tests only (Settings refuses this outside env=testing).
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8,
        "argon2_parallelism": 1,
        # Each test its own corpus file (absent: the shipped list), re-read at every check.
        "breached_corpus": tmp_path / "breached.idpbf",
        "breached_reload_seconds": 0,
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    settings.validate()
    return settings


def truncate_all(database_url: str) -> None:
    from idp.db import make_engine

    engine = make_engine(database_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()
