"""Helpers every command module shares.

The command modules import nothing heavy at module level: `idp --help`, a usage error
and the commands that need little start in a fraction of the time the provider's
imports (SQLAlchemy, joserfc, limits) would take. Each command imports what it uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from idp.errors import IdpError

if TYPE_CHECKING:
    from idp.settings import Settings


def fail(message: str) -> None:
    raise click.ClickException(message)


def load_settings() -> Settings:
    from idp.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as error:
        fail(str(error))
        raise  # unreachable; for type checkers


@contextmanager
def services_scope() -> Iterator:  # type: ignore[type-arg]
    """A registry and a database session for one command; commits when it succeeds."""
    from sqlalchemy.exc import DBAPIError

    from idp.crypto.kek import KekError
    from idp.registry import Registry

    try:
        registry = Registry.build(load_settings())
    except KekError as error:  # unreadable, malformed or world-readable key file
        fail(str(error))
    db = registry.sessionmaker()
    try:
        yield registry.services(db)
        db.commit()
    except IdpError as error:
        db.rollback()
        fail(error.public_message)
    except DBAPIError as error:
        # Unreachable server, missing tables: an operator's mistake, not a bug, so one
        # line naming the cause (the driver's first line) and the usual remedy.
        db.rollback()
        cause = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
        fail(f"database error: {cause} (check IDP_DATABASE_URL and run 'idp db upgrade')")
    finally:
        db.close()
        registry.engine.dispose()
