"""Apps for the protection tests: their own thresholds, their own Redis prefix.

Every app gets a random ``redis_prefix`` (Settings does that under env=testing); after the
test only that prefix is deleted from Redis, so parallel runs and other tests are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from tests.conftest import make_settings, truncate_all
from tests.fixtures import get_csrf

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"


def flush_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def make_app(database_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def factory(**overrides: object) -> Flask:
        values: dict[str, object] = {
            "mfa_policy": "optional",
            # The rules under test, not the per-address request budget (tested on its own).
            "rate_limit_login": "10000 per minute",
            "rate_limit_signin_link": "10000 per minute",
        }
        values.update(overrides)
        url = values.pop("redis_url", redis_url)
        settings = make_settings(database_url=database_url, redis_url=url, tmp_path=tmp_path, **values)
        application = create_app(settings)
        apps.append(application)
        return application

    yield factory
    for application in apps:
        registry = application.extensions["idp"]
        if redis_url is not None and registry.settings.redis_url == redis_url:
            flush_prefix(redis_url, registry.settings.redis_prefix)
        registry.engine.dispose()
    truncate_all(database_url)


def client_at(app: Flask, ip: str, *, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0") -> FlaskClient:
    """A browser whose connections come from ``ip`` (a distinct loopback address)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def attempt(client: FlaskClient, email: str, password: str):  # type: ignore[no-untyped-def]
    token = get_csrf(client, "/login")
    return client.post("/login", data={"csrf_token": token, "username": email, "password": password})


def create_user(app: Flask, email: str, password: str = PASSWORD) -> str:
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        user = registry.services(db).accounts.create_by_operator(email, password, verified=True)
        db.commit()
        return user.id


def audit_events(app: Flask, event: str) -> list:  # type: ignore[type-arg]
    from sqlalchemy import select

    from idp.models import AuditEvent

    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.seq)))
