"""The ``idp`` command (DESIGN section 5). Same services as the web pages.

Every command reads the settings from the environment once; bad input exits non-zero
with a one-line reason on stderr, never a trace. Each area lives in its own module in
this package and is added to the group below.
"""

from __future__ import annotations

import sys

import click

from idp.cli import audit, breached, clients, db, keys, serve, users


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """idp: the OpenID Connect provider. Configuration comes from IDP_* variables."""


cli.add_command(serve.serve)
cli.add_command(db.db)
cli.add_command(users.users)
cli.add_command(clients.clients)
cli.add_command(keys.keys)
cli.add_command(breached.breached)
cli.add_command(audit.audit)


def main(argv: list[str] | None = None) -> None:
    """Entry point: errors are one line on stderr and a non-zero exit."""
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


if __name__ == "__main__":  # pragma: no cover
    main()
