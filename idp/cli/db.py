from __future__ import annotations

import click

from idp.cli.common import fail, load_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration (creates the SQLite file if needed)."""
    from sqlalchemy.exc import OperationalError

    from idp.migrations import upgrade as run_upgrade

    settings = load_settings()
    try:
        run_upgrade(settings.database_url)
    except OperationalError as error:
        fail(f"cannot reach the database: {str(error.orig).splitlines()[0]}")
    click.echo("database is up to date")
