"""Test set-up shared by every folder.

The suite runs twice (``make test``): against SQLite, and against PostgreSQL + Redis
(``IDP_TEST_DATABASE=postgresql``). In the second run a missing PostgreSQL or Redis is a
failure of the whole session, never a silent skip. Each run creates its own database
(and its own Redis key prefix), so concurrent runs on one machine do not collide.

Tests marked ``backend_independent`` (pure code: no database, no Redis, no app) run in
the SQLite run only; the PostgreSQL run deselects them and says how many.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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


# ---------------------------------------------------------- backend-independent tests
# A test marked backend_independent gives the same answer whatever IDP_TEST_DATABASE
# says, so running it a second time against PostgreSQL proves nothing: that run
# deselects it. Marked by hand, module by module (``pytestmark``), and checked below:
# the marker on a test that reaches the backend is an error, not a silent skip.
INDEPENDENT = "backend_independent"
# Fixtures through which a test reaches the backend (settings, app, live_server, ...
# all depend on them), and names of this module that tell a test which backend it has.
BACKEND_FIXTURES = frozenset({"database_url", "redis_url"})
BACKEND_NAMES = ("BACKEND", "POSTGRES_URL", "REDIS_URL", "_create_postgres_database")
_independent_count = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{INDEPENDENT}: pure code, no database, Redis or app; runs in the SQLite run only",
    )


def _reaches_the_backend(item: pytest.Item) -> bool:
    if BACKEND_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(getattr(module, name, None) is globals()[name] for name in BACKEND_NAMES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    independent = [item for item in items if item.get_closest_marker(INDEPENDENT) is not None]
    wrong = [item.nodeid for item in independent if _reaches_the_backend(item)]
    if wrong:
        raise pytest.UsageError(f"marked {INDEPENDENT} but reaches the backend: " + ", ".join(wrong))
    config.stash[_independent_count] = len(independent)
    if BACKEND == "postgresql" and independent:
        config.hook.pytest_deselected(items=independent)
        chosen = set(independent)
        items[:] = [item for item in items if item not in chosen]


def pytest_report_collectionfinish(config: pytest.Config) -> str:
    count = config.stash.get(_independent_count, 0)
    if BACKEND == "postgresql":
        return f"{count} backend-independent tests deselected: the SQLite run runs them"
    return f"{count} backend-independent tests: they run here only (the PostgreSQL run deselects them)"


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
