"""Services on a real database session (no HTTP): the in-app wiring, nothing mocked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from idp.context import RequestContext
from idp.models import User
from idp.registry import Services

CTX = RequestContext(ip="192.0.2.10", user_agent="pytest")


@pytest.fixture
def services(app: Flask) -> Iterator[Services]:
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        yield registry.services(db)


@pytest.fixture
def user(services: Services, make_user: Callable[..., User]) -> User:
    made = make_user("owner@example.com")
    found = services.accounts.get(made.id)
    assert found is not None
    return found
