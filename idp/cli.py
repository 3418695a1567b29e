"""The ``idp`` command (DESIGN section 5). Same services as the web pages.

Every command reads the settings from the environment once; bad input exits non-zero
with a one-line reason (click's usage errors, or ``fail`` below).
"""

from __future__ import annotations

import json
import os
import sys
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """idp: the OpenID Connect provider. Configuration comes from IDP_* variables."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: errors are one line on stderr and a non-zero exit, never a trace."""
    try:
        code = cli.main(args=argv, prog_name="idp", standalone_mode=False)
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"idp: {error.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as error:
        click.echo(f"idp: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except click.Abort:
        click.echo("idp: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# ---------------------------------------------------------------------- serve
@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default: 1 without IDP_REDIS_URL, else one per core).",
)
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="Threads per worker.")
def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    """Run the provider under gunicorn (threaded workers, keep-alive)."""
    from idp.server import run

    settings = load_settings()
    if workers is None:
        workers = 1 if settings.redis_url is None else (os.cpu_count() or 1)
    if workers > 1 and settings.redis_url is None:
        # Counters kept in process memory would be split between workers: an attacker
        # would get a fresh budget on each. Scale out only with shared counters.
        fail("more than one worker needs IDP_REDIS_URL (rate-limit counters must be shared)")
    run(settings, host=host, port=port, workers=workers, threads=threads)


# ------------------------------------------------------------------------- db
@cli.group()
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


# ---------------------------------------------------------------------- users
@cli.group()
def users() -> None:
    """Accounts."""


@users.command("create")
@click.option("--email", required=True, help="Sign-in email address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@click.option("--verified", is_flag=True, help="Mark the email address as already verified.")
def users_create(email: str, password_stdin: bool, verified: bool) -> None:
    """Create an account. Without a password it has none until the user resets it."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
    with services_scope() as services:
        user = services.accounts.create_by_operator(email, password, verified=verified)
        click.echo(json.dumps({"id": user.id, "email": user.email, "verified": user.email_verified}))


if __name__ == "__main__":  # pragma: no cover
    main()
