"""Helpers every command module shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from idp.errors import IdpError
from idp.settings import Settings, SettingsError


def fail(message: str) -> None:
    raise click.ClickException(message)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as error:
        fail(str(error))
        raise  # unreachable; for type checkers


@contextmanager
def services_scope() -> Iterator:  # type: ignore[type-arg]
    """A registry and a database session for one command; commits when it succeeds."""
    from idp.registry import Registry

    registry = Registry.build(load_settings())
    db = registry.sessionmaker()
    try:
        yield registry.services(db)
        db.commit()
    except IdpError as error:
        db.rollback()
        fail(error.public_message)
    finally:
        db.close()
        registry.engine.dispose()
