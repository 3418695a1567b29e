from __future__ import annotations

import json
import sys

import click

from idp.cli.common import fail, services_scope


@click.group()
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
